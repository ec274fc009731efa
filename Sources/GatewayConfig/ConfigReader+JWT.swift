import Foundation
import TOMLKit

extension ConfigReader {
    /// `[auth.jwt]` with its `signing_keys` and `issuers` arrays.
    func readJWT(_ table: TOMLTable) -> JWTSettings {
        let path = "auth.jwt"
        self.rejectUnknown(
            in: table,
            path: path,
            allowed: [
                "issuer", "audience", "access_token_ttl", "refresh_token_ttl", "leeway", "max_token_lifetime",
                "verified_cache_entries", "signing_keys", "issuers", "password_hash_cost",
                "login_attempts_per_address", "login_attempts_per_account", "login_window", "refresh_reuse_grace",
            ]
        )
        var settings = JWTSettings()
        if let issuer = self.string(table, "issuer", path: path) {
            if issuer.isEmpty || issuer.utf8.count > 256 {
                self.problem("\(path).issuer", "must be 1-256 characters (e.g. \"https://gateway.example.com\")")
            } else {
                settings.issuer = issuer
            }
        }
        if let audience = self.string(table, "audience", path: path) {
            if audience.isEmpty {
                self.problem("\(path).audience", "must not be empty")
            } else {
                settings.audience = audience
            }
        }
        self.boundedDuration(table, "access_token_ttl", path: path, .seconds(30)...(.seconds(86400))).map {
            settings.accessTokenTTL = $0
        }
        self.boundedDuration(table, "refresh_token_ttl", path: path, .seconds(60)...(.seconds(400 * 86400))).map {
            settings.refreshTokenTTL = $0
        }
        self.boundedDuration(table, "refresh_reuse_grace", path: path, .zero...(.seconds(60))).map {
            settings.refreshReuseGrace = $0
        }
        self.boundedDuration(table, "leeway", path: path, .zero...(.seconds(600))).map { settings.leeway = $0 }
        self.boundedDuration(table, "max_token_lifetime", path: path, .seconds(60)...(.seconds(30 * 86400))).map {
            settings.maxTokenLifetime = $0
        }
        self.integer(table, "verified_cache_entries", path: path, range: 0...10_000_000).map {
            settings.verifiedCacheEntries = $0
        }
        self.integer(table, "password_hash_cost", path: path, range: 10...20).map { settings.passwordHashCost = $0 }
        self.integer(table, "login_attempts_per_address", path: path, range: 1...100_000).map {
            settings.loginAttemptsPerAddress = $0
        }
        self.integer(table, "login_attempts_per_account", path: path, range: 1...100_000).map {
            settings.loginAttemptsPerAccount = $0
        }
        self.boundedDuration(table, "login_window", path: path, .seconds(1)...(.seconds(3600))).map {
            settings.loginWindow = $0
        }
        // The limiter counts in tokens per second, minute or hour: any other window is
        // expressed per hour, which must stay within a bucket's bounds.
        let window = Int(settings.loginWindow.components.seconds)
        if ![1, 60, 3600].contains(window) {
            for (key, attempts) in [
                ("login_attempts_per_address", settings.loginAttemptsPerAddress),
                ("login_attempts_per_account", settings.loginAttemptsPerAccount),
            ]
            where (attempts * 3600 + window - 1) / window > 1_000_000 {
                self.problem(
                    "\(path).\(key)",
                    "\(attempts) per \(window)s is too many to count (at most 1000000 per hour)"
                )
            }
        }
        if settings.accessTokenTTL > settings.maxTokenLifetime {
            self.problem("\(path).access_token_ttl", "must not exceed max_token_lifetime")
        }
        settings.signingKeys = self.readSigningKeys(table, path: path)
        if settings.issuer != nil, settings.signingKeys.isEmpty {
            self.problem("\(path).signing_keys", "an issuer needs at least one [[auth.jwt.signing_keys]] entry")
        }
        if !settings.signingKeys.isEmpty {
            let active = settings.signingKeys.filter(\.active).count
            if active != 1 {
                self.problem(
                    "\(path).signing_keys",
                    "exactly one signing key must have active = true (found \(active))"
                )
            }
            if settings.issuer == nil {
                self.problem("\(path).issuer", "signing keys are configured but issuer is not")
            }
        }
        settings.issuers = self.readIssuers(
            table,
            path: path,
            defaultAudience: settings.audience,
            ownIssuer: settings.issuer
        )
        return settings
    }

    func boundedDuration(_ table: TOMLTable, _ key: String, path: String, _ range: ClosedRange<Duration>) -> Duration? {
        // Parsed with a generous ceiling, then checked against this key's own range so the
        // message names that range.
        guard
            let value = self.duration(
                table,
                key,
                path: path,
                allowZero: range.lowerBound == .zero,
                maximum: max(range.upperBound, .seconds(400 * 86_400))
            )
        else {
            return nil
        }
        guard range.contains(value) else {
            self.problem(
                "\(path).\(key)",
                "must be between \(ValueParsers.text(of: range.lowerBound)) and \(ValueParsers.text(of: range.upperBound))"
            )
            return nil
        }
        return value
    }

    func tableArray(_ table: TOMLTable, _ key: String, path: String) -> [(TOMLTable, String)] {
        guard let value = table[key] else { return [] }
        guard let array = value.array else {
            self.problem("\(path).\(key)", "must be an array of tables ([[\(path).\(key)]])")
            return []
        }
        var out: [(TOMLTable, String)] = []
        for (index, element) in array.enumerated() {
            guard let entry = element.table else {
                self.problem("\(path).\(key)[\(index)]", "must be a table")
                continue
            }
            out.append((entry, "\(path).\(key)[\(index)]"))
        }
        return out
    }

    private func readFile(_ file: String, key: String, limit: Int) -> String? {
        guard let data = FileManager.default.contents(atPath: file) else {
            self.problem(key, "\(file) cannot be read")
            return nil
        }
        guard data.count <= limit, let text = String(data: data, encoding: .utf8), !text.isEmpty else {
            self.problem(key, "\(file) is empty, not UTF-8 or larger than \(limit) bytes")
            return nil
        }
        return text
    }

    private func readSigningKeys(_ table: TOMLTable, path: String) -> [SigningKeySettings] {
        var keys: [SigningKeySettings] = []
        var seen = Set<String>()
        for (entry, entryPath) in self.tableArray(table, "signing_keys", path: path) {
            self.rejectUnknown(
                in: entry,
                path: entryPath,
                allowed: [
                    "kid", "algorithm", "private_key_file", "private_key_passphrase_file", "private_key_passphrase_env",
                    "active",
                ]
            )
            guard let kid = self.string(entry, "kid", path: entryPath) else {
                if entry["kid"] == nil { self.problem("\(entryPath).kid", "is required (e.g. \"2026-11\")") }
                continue
            }
            if kid.isEmpty || kid.utf8.count > 64
                || !kid.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 0x20 && $0 != "\"" })
            {
                self.problem("\(entryPath).kid", "must be 1-64 printable ASCII characters without spaces or quotes")
                continue
            }
            guard seen.insert(kid).inserted else {
                self.problem("\(entryPath).kid", "kid \"\(kid)\" is used twice")
                continue
            }
            var algorithm = SigningKeySettings.Algorithm.rs256
            if let name = self.string(entry, "algorithm", path: entryPath) {
                guard let parsed = SigningKeySettings.Algorithm(rawValue: name) else {
                    self.problem("\(entryPath).algorithm", "must be RS256, ES256 or EdDSA")
                    continue
                }
                algorithm = parsed
            }
            guard let file = self.string(entry, "private_key_file", path: entryPath) else {
                if entry["private_key_file"] == nil {
                    self.problem("\(entryPath).private_key_file", "is required (a PEM private key)")
                }
                continue
            }
            guard let pem = self.readFile(file, key: "\(entryPath).private_key_file", limit: 64 * 1024) else {
                continue
            }
            let passphrase = self.secret(
                entry,
                fileKey: "private_key_passphrase_file",
                envKey: "private_key_passphrase_env",
                path: entryPath
            )
            let active = self.bool(entry, "active", path: entryPath) ?? false
            keys.append(
                SigningKeySettings(
                    keyID: kid,
                    algorithm: algorithm,
                    privateKeyFile: file,
                    privateKeyPEM: Secret(pem),
                    passphrase: passphrase,
                    active: active
                )
            )
        }
        return keys
    }

    private static let supportedAlgorithms: Set<String> = [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256", "HS384", "HS512",
    ]

    private func readIssuers(
        _ table: TOMLTable,
        path: String,
        defaultAudience: String,
        ownIssuer: String?
    ) -> [IssuerSettings] {
        var issuers: [IssuerSettings] = []
        var seen = Set<String>()
        if let ownIssuer { seen.insert(ownIssuer) }
        for (entry, entryPath) in self.tableArray(table, "issuers", path: path) {
            self.rejectUnknown(
                in: entry,
                path: entryPath,
                allowed: [
                    "issuer", "jwks_url", "jwks_file", "discovery_url", "audiences", "required_type", "algorithms",
                    "min_refresh_interval", "max_refresh_interval", "unknown_kid_refetch_interval", "fetch_timeout",
                    "ca_file", "require_subject",
                ]
            )
            guard let issuer = self.string(entry, "issuer", path: entryPath), !issuer.isEmpty else {
                self.problem("\(entryPath).issuer", "is required (the exact iss value of its tokens)")
                continue
            }
            guard seen.insert(issuer).inserted else {
                self.problem("\(entryPath).issuer", "issuer \"\(issuer)\" is configured twice (or is our own issuer)")
                continue
            }
            let url = self.string(entry, "jwks_url", path: entryPath)
            let file = self.string(entry, "jwks_file", path: entryPath)
            let discovery = self.string(entry, "discovery_url", path: entryPath)
            let sources = [url, file, discovery].compactMap { $0 }
            guard sources.count == 1 else {
                self.problem("\(entryPath).jwks_url", "set exactly one of jwks_url, jwks_file, discovery_url")
                continue
            }
            var source: IssuerSettings.KeySource
            if let url {
                guard Self.isKeyURL(url) else {
                    self.problem(
                        "\(entryPath).jwks_url",
                        "must be an https:// URL (http:// only to a loopback address)"
                    )
                    continue
                }
                source = .jwksURL(url)
            } else if let discovery {
                guard Self.isKeyURL(discovery) else {
                    self.problem(
                        "\(entryPath).discovery_url",
                        "must be an https:// URL (http:// only to a loopback address)"
                    )
                    continue
                }
                source = .discovery(discovery)
            } else {
                guard let text = self.readFile(file!, key: "\(entryPath).jwks_file", limit: 256 * 1024) else {
                    continue
                }
                source = .file(path: file!, contents: Secret(text))
            }
            let audiences = self.stringArray(entry, "audiences", path: entryPath) ?? [defaultAudience]
            var settings = IssuerSettings(issuer: issuer, keySource: source, audiences: audiences)
            settings.requiredType = self.string(entry, "required_type", path: entryPath)
            if let algorithms = self.stringArray(entry, "algorithms", path: entryPath) {
                for name in algorithms where !Self.supportedAlgorithms.contains(name) {
                    self.problem(
                        "\(entryPath).algorithms",
                        "unsupported algorithm \"\(name)\" (supported: \(Self.supportedAlgorithms.sorted().joined(separator: ", ")))"
                    )
                }
                settings.algorithms = algorithms
            }
            self.boundedDuration(entry, "min_refresh_interval", path: entryPath, .seconds(1)...(.seconds(86400))).map {
                settings.minRefreshInterval = $0
            }
            self.boundedDuration(entry, "max_refresh_interval", path: entryPath, .seconds(1)...(.seconds(7 * 86400)))
                .map { settings.maxRefreshInterval = $0 }
            self.boundedDuration(
                entry,
                "unknown_kid_refetch_interval",
                path: entryPath,
                .milliseconds(100)...(.seconds(3600))
            ).map { settings.unknownKeyRefetchInterval = $0 }
            self.boundedDuration(entry, "fetch_timeout", path: entryPath, .milliseconds(100)...(.seconds(60))).map {
                settings.fetchTimeout = $0
            }
            self.bool(entry, "require_subject", path: entryPath).map { settings.requireSubject = $0 }
            if let caFile = self.string(entry, "ca_file", path: entryPath) {
                if FileManager.default.isReadableFile(atPath: caFile) {
                    settings.caFile = caFile
                } else {
                    self.problem("\(entryPath).ca_file", "\(caFile) cannot be read")
                }
            }
            if settings.minRefreshInterval > settings.maxRefreshInterval {
                self.problem("\(entryPath).min_refresh_interval", "must not exceed max_refresh_interval")
            }
            issuers.append(settings)
        }
        return issuers
    }

    private static func isKeyURL(_ text: String) -> Bool { KeyURLPolicy.allows(text) }
}

/// Where signing keys (JWKS, OIDC discovery) may be fetched from. Keys decide who may sign
/// tokens: they come over https, or over plain http only from this host (a local sidecar,
/// tests), never in the clear across a network. Pure; any thread.
package enum KeyURLPolicy {
    package static func allows(_ text: String) -> Bool {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty
        else {
            return false
        }
        if scheme == "https" { return true }
        return scheme == "http" && isLoopback(host)
    }

    package static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }
}
