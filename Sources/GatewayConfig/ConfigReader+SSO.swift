import GatewayCore
import TOMLKit

extension ConfigReader {
    /// `[sso]` with its `[[sso.providers]]` and their `[[sso.providers.scope_rules]]`.
    /// Signing users in needs the gateway's issuer (sessions) and Redis (users, sign-in state).
    func readSSO(_ table: TOMLTable, jwt: JWTSettings, hasRedis: Bool) -> SSOSettings {
        let path = "sso"
        self.rejectUnknown(in: table, path: path, allowed: ["password_login", "providers"])
        var settings = SSOSettings()
        self.bool(table, "password_login", path: path).map { settings.passwordLogin = $0 }
        if jwt.issuer == nil {
            self.problem(
                path,
                "users signed in through a provider get the gateway's sessions: set [auth.jwt] issuer and a signing key"
            )
        }
        if !hasRedis {
            self.problem(path, "users and sign-in state are kept in Redis: configure [redis]")
        }
        if let value = table["providers"] {
            if let array = value.array {
                var seen = Set<String>()
                for (index, element) in array.enumerated() {
                    let entryPath = "\(path).providers[\(index)]"
                    guard let entry = element.table else {
                        self.problem(entryPath, "must be a table")
                        continue
                    }
                    guard let provider = self.readSSOProvider(entry, path: entryPath) else { continue }
                    guard seen.insert(provider.name).inserted else {
                        self.problem("\(entryPath).name", "provider \"\(provider.name)\" is declared twice")
                        continue
                    }
                    settings.providers.append(provider)
                }
            } else {
                self.problem("\(path).providers", "must be an array of tables ([[sso.providers]])")
            }
        }
        if !settings.passwordLogin, settings.providers.isEmpty, table["providers"] == nil {
            self.problem(
                "\(path).password_login",
                "with password_login = false nobody could sign in: declare at least one [[sso.providers]]"
            )
        }
        return settings
    }

    private func readSSOProvider(_ entry: TOMLTable, path: String) -> SSOProviderSettings? {
        self.rejectUnknown(
            in: entry,
            path: path,
            allowed: [
                "name", "display_name", "issuer", "ca_file", "client_id", "client_secret_file", "client_secret_env",
                "scopes",
                "allowed_domains", "email_claim", "require_email_verified", "scope_rules", "default_scopes",
                "algorithms", "timeout",
            ]
        )
        var valid = true
        // Read first, so every problem of the entry is reported at once.
        var scopeRules: [SSOScopeRule] = []
        if let value = entry["scope_rules"] {
            if let array = value.array {
                for (index, element) in array.enumerated() {
                    let rulePath = "\(path).scope_rules[\(index)]"
                    guard let rule = element.table else {
                        self.problem(rulePath, "must be a table")
                        valid = false
                        continue
                    }
                    if let parsed = self.readSSOScopeRule(rule, path: rulePath) {
                        scopeRules.append(parsed)
                    } else {
                        valid = false
                    }
                }
            } else {
                self.problem("\(path).scope_rules", "must be an array of tables ([[sso.providers.scope_rules]])")
                valid = false
            }
        }
        func required(_ key: String, example: String) -> String? {
            guard let value = self.string(entry, key, path: path) else {
                if entry[key] == nil { self.problem("\(path).\(key)", "is required (e.g. \(example))") }
                valid = false
                return nil
            }
            return value
        }
        let name = required("name", example: "\"keycloak\"")
        if let name, !SSOProviderSettings.isValidName(name) {
            self.problem("\(path).name", "must be 1-32 characters of a-z 0-9 - (not starting or ending with -)")
            valid = false
        }
        let issuer = required("issuer", example: "\"https://sso.example.com/realms/staff\"")
        if let issuer {
            // Discovery and keys over https; plain http only to this host (tests, a sidecar).
            if !KeyURLPolicy.allows(issuer) || issuer.contains("?") || issuer.contains("#") || issuer.utf8.count > 512 {
                self.problem(
                    "\(path).issuer",
                    "must be an https:// URL without query or fragment (http:// only on a loopback address)"
                )
                valid = false
            }
        }
        let clientID = required("client_id", example: "\"dbaudit-gateway\"")
        if let clientID,
            clientID.isEmpty || clientID.utf8.count > 256 || !clientID.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        {
            self.problem("\(path).client_id", "must be 1-256 printable ASCII characters")
            valid = false
        }
        let secret = self.secret(entry, fileKey: "client_secret_file", envKey: "client_secret_env", path: path)
        if secret == nil {
            if entry["client_secret_file"] == nil && entry["client_secret_env"] == nil {
                self.problem(
                    "\(path).client_secret_file",
                    "the gateway authenticates to the token endpoint: set client_secret_file or client_secret_env"
                )
            }
            valid = false
        }
        guard valid, let name, let issuer, let clientID, let secret else { return nil }
        var provider = SSOProviderSettings(
            name: name,
            displayName: self.string(entry, "display_name", path: path) ?? name,
            issuer: issuer,
            clientID: clientID,
            clientSecret: secret
        )
        if provider.displayName.isEmpty || provider.displayName.utf8.count > 64 {
            self.problem("\(path).display_name", "must be 1-64 characters")
            valid = false
        }
        provider.scopeRules = scopeRules
        provider.caFile = self.string(entry, "ca_file", path: path)
        if let scopes = self.stringArray(entry, "scopes", path: path) {
            if !scopes.contains("openid") {
                self.problem("\(path).scopes", "must include \"openid\" (the provider sends an ID token only then)")
                valid = false
            } else if !ScopeToken.areValid(scopes) {
                self.problem("\(path).scopes", "must be scope tokens (no spaces or quotes)")
                valid = false
            } else {
                provider.scopes = scopes
            }
        }
        if let domains = self.stringArray(entry, "allowed_domains", path: path) {
            let lowered = domains.map { $0.lowercased() }
            if let bad = lowered.first(where: {
                $0.isEmpty || $0.hasPrefix("@") || $0.contains("@") || $0.contains(" ") || !$0.contains(".")
            }) {
                self.problem(
                    "\(path).allowed_domains",
                    "\"\(bad.prefix(64))\" is not a domain name (write example.com, without @)"
                )
                valid = false
            }
            provider.allowedDomains = lowered
        }
        if let claim = self.string(entry, "email_claim", path: path) {
            if SSOProviderSettings.isValidClaimName(claim) {
                provider.emailClaim = claim
            } else {
                self.problem("\(path).email_claim", "must be a claim name of 1-64 printable characters")
                valid = false
            }
        }
        self.bool(entry, "require_email_verified", path: path).map { provider.requireEmailVerified = $0 }
        if let scopes = self.stringArray(entry, "default_scopes", path: path) {
            if let unknown = scopes.first(where: { !Scopes.all.contains($0) }) {
                self.problem(
                    "\(path).default_scopes",
                    "unknown scope \"\(unknown.prefix(64))\" (known: \(Scopes.all.joined(separator: " ")))"
                )
                valid = false
            }
            provider.defaultScopes = scopes
        }
        if let algorithms = self.stringArray(entry, "algorithms", path: path) {
            let supported = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
            if algorithms.isEmpty {
                self.problem("\(path).algorithms", "must name at least one algorithm")
                valid = false
            } else if let bad = algorithms.first(where: { !supported.contains($0) }) {
                self.problem(
                    "\(path).algorithms",
                    "unsupported algorithm \"\(bad.prefix(16))\" (supported: \(supported.joined(separator: ", ")))"
                )
                valid = false
            }
            provider.algorithms = algorithms
        }
        if let timeout = self.duration(entry, "timeout", path: path) {
            if timeout < .milliseconds(100) || timeout > .seconds(30) {
                self.problem("\(path).timeout", "must be between 100ms and 30s")
                valid = false
            } else {
                provider.timeout = timeout
            }
        }
        return valid ? provider : nil
    }

    private func readSSOScopeRule(_ rule: TOMLTable, path: String) -> SSOScopeRule? {
        self.rejectUnknown(in: rule, path: path, allowed: ["claim", "value", "scopes"])
        guard let claim = self.string(rule, "claim", path: path), let value = self.string(rule, "value", path: path),
            let scopes = self.stringArray(rule, "scopes", path: path)
        else {
            for key in ["claim", "value", "scopes"] where rule[key] == nil {
                self.problem("\(path).\(key)", "is required")
            }
            return nil
        }
        guard SSOProviderSettings.isValidClaimName(claim) else {
            self.problem("\(path).claim", "must be a claim name of 1-64 printable characters (e.g. \"groups\")")
            return nil
        }
        guard !value.isEmpty, value.utf8.count <= 256 else {
            self.problem("\(path).value", "must be 1-256 characters")
            return nil
        }
        guard !scopes.isEmpty else {
            self.problem("\(path).scopes", "must name at least one scope")
            return nil
        }
        if let unknown = scopes.first(where: { !Scopes.all.contains($0) }) {
            self.problem(
                "\(path).scopes",
                "unknown scope \"\(unknown.prefix(64))\" (known: \(Scopes.all.joined(separator: " ")))"
            )
            return nil
        }
        return SSOScopeRule(claim: claim, value: value, scopes: scopes)
    }
}
