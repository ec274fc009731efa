import Foundation
import TOMLKit

/// Turns `gateway.conf` (TOML) into a validated `GatewayConfiguration`, or a
/// `ConfigurationError` listing every problem with file, line and key.
///
/// Stateless; any thread. Reading a file is blocking I/O: call it from start-up, the CLI
/// or the reload task, never from an event loop.
package enum ConfigurationLoader {
    /// Configuration files larger than this are refused before parsing.
    package static let maximumFileBytes = 1 << 20

    /// Reads and validates the file at `path`.
    package static func load(path: String) throws(ConfigurationError) -> GatewayConfiguration {
        let text: String
        do {
            let url = URL(fileURLWithPath: path)
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            if let size = attributes[.size] as? NSNumber, size.intValue > maximumFileBytes {
                throw ConfigurationError(problems: [
                    .init(file: path, line: nil, key: "", message: "file is larger than \(maximumFileBytes) bytes")
                ])
            }
            let data = try Data(contentsOf: url)
            guard let decoded = String(data: data, encoding: .utf8) else {
                throw ConfigurationError(problems: [
                    .init(file: path, line: nil, key: "", message: "file is not valid UTF-8")
                ])
            }
            text = decoded
        } catch let error as ConfigurationError {
            throw error
        } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read" : "does not exist"
            throw ConfigurationError(problems: [.init(file: path, line: nil, key: "", message: "file \(reason)")])
        }
        return try parse(text: text, file: path)
    }

    /// Validates TOML `text`; `file` names it in error messages.
    package static func parse(text: String, file: String) throws(ConfigurationError) -> GatewayConfiguration {
        // toml++ aborts the process on a few malformed constructs instead of reporting them.
        if let problem = TOMLPreflight.check(text) {
            throw ConfigurationError(problems: [
                .init(file: file, line: problem.line, key: "", message: "TOML syntax error: \(problem.message)")
            ])
        }
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigurationError(problems: [
                .init(
                    file: file,
                    line: error.source.begin.line,
                    key: "",
                    message: "TOML syntax error: \(error.description)"
                )
            ])
        } catch {
            throw ConfigurationError(problems: [.init(file: file, line: nil, key: "", message: "TOML syntax error")])
        }
        let reader = ConfigReader(file: file, lines: SourceLines(text: text))
        let configuration = reader.read(root: root)
        if let configuration, reader.problems.isEmpty {
            return configuration
        }
        throw ConfigurationError(problems: reader.problems)
    }
}

/// Walks the parsed TOML tree section by section, converting and range-checking each key
/// and collecting problems. One instance per parse; not shared.
final class ConfigReader {
    let file: String
    let lines: SourceLines
    private(set) var problems: [ConfigurationError.Problem] = []

    init(file: String, lines: SourceLines) {
        self.file = file
        self.lines = lines
    }

    func problem(_ key: String, _ message: String) {
        self.problems.append(.init(file: self.file, line: self.lines.line(of: key), key: key, message: message))
    }

    func read(root: TOMLTable) -> GatewayConfiguration? {
        self.rejectUnknown(
            in: root,
            path: "",
            allowed: [
                "server", "upstream", "logging", "redis", "cache", "auth", "routes", "admin", "rate_limits", "oauth",
                "ui", "sso",
            ]
        )
        var server = ServerSettings()
        if let table = self.table(root, "server", path: "") {
            self.readServer(table, into: &server)
        }
        var upstream: UpstreamSettings?
        if let table = self.table(root, "upstream", path: "") {
            upstream = self.readUpstream(table)
        } else {
            self.problem("upstream", "the [upstream] section is required (e.g. url = \"http://127.0.0.1:9000\")")
        }
        var logging = LoggingSettings()
        if let table = self.table(root, "logging", path: "") {
            self.readLogging(table, into: &logging)
        }
        var redis: RedisSettings?
        if let table = self.table(root, "redis", path: "") {
            redis = self.readRedis(table)
        }
        var cache = CacheSettings()
        if let table = self.table(root, "cache", path: "") {
            self.readCache(table, into: &cache)
        }
        var apiKeys = APIKeySettings()
        var jwt = JWTSettings()
        var introspection: [IntrospectionSettings] = []
        if let auth = self.table(root, "auth", path: "") {
            self.rejectUnknown(in: auth, path: "auth", allowed: ["api_keys", "jwt", "oauth"])
            if let table = self.table(auth, "api_keys", path: "auth") {
                self.readAPIKeys(table, into: &apiKeys)
            }
            if let table = self.table(auth, "jwt", path: "auth") {
                jwt = self.readJWT(table)
            }
            if let table = self.table(auth, "oauth", path: "auth") {
                introspection = self.readOAuthRequestPath(table)
            }
        }
        if redis != nil, apiKeys.pepper == nil {
            self.problem(
                "auth.api_keys.pepper_file",
                "a pepper (pepper_file or pepper_env) is required when [redis] stores API keys"
            )
        }
        var oauth: OAuthSettings?
        if let table = self.table(root, "oauth", path: "") {
            oauth = self.readOAuth(table, jwt: jwt, hasRedis: redis != nil)
        }
        let rateLimits = self.readRateLimits(root)
        let routes = self.readRoutes(root, policies: Set(rateLimits.map(\.name)))
        if let name = apiKeys.managementRateLimit, !rateLimits.contains(where: { $0.name == name }) {
            let known =
                rateLimits.isEmpty
                ? "none defined" : "defined: \(rateLimits.map(\.name).sorted().joined(separator: ", "))"
            self.problem(
                "auth.api_keys.management_rate_limit",
                "no [[rate_limits]] policy is named \"\(name)\" (\(known))"
            )
        }
        var admin: AdminSettings?
        if let table = self.table(root, "admin", path: "") {
            admin = self.readAdmin(table)
        }
        var ui = UISettings()
        if let table = self.table(root, "ui", path: "") {
            ui = self.readUI(table)
        }
        if ui.enabled == true, jwt.issuer == nil {
            self.problem(
                "ui.enabled",
                "the settings pages sign users in as the gateway's issuer: set [auth.jwt] issuer"
            )
        }
        if ui.enabled ?? (jwt.issuer != nil) {
            // The pages answer every path under the prefix before any route is matched: a
            // route there would never reach the upstream.
            for (index, route) in routes.enumerated()
            where route.path == ui.pathPrefix || route.path.hasPrefix(ui.pathPrefix + "/") {
                self.problem(
                    "routes[\(index)].path",
                    "\(route.path) is under [ui] path_prefix \"\(ui.pathPrefix)\", where the settings pages answer; "
                        + "move the pages (path_prefix) or turn them off ([ui] enabled = false)"
                )
            }
        }
        var sso: SSOSettings?
        if let table = self.table(root, "sso", path: "") {
            sso = self.readSSO(table, jwt: jwt, hasRedis: redis != nil)
        }
        guard let upstream else { return nil }
        var configuration = GatewayConfiguration(server: server, upstream: upstream, logging: logging)
        configuration.redis = redis
        configuration.cache = cache
        configuration.apiKeys = apiKeys
        configuration.jwt = jwt
        configuration.introspection = introspection
        configuration.routes = routes
        configuration.admin = admin
        configuration.rateLimits = rateLimits
        configuration.ui = ui
        configuration.oauth = oauth
        configuration.sso = sso
        return configuration
    }

    private func readAdmin(_ table: TOMLTable) -> AdminSettings {
        let path = "admin"
        self.rejectUnknown(in: table, path: path, allowed: ["listen", "allow_remote", "token_file", "token_env"])
        var admin = AdminSettings()
        var listenIsValid = true
        if let listen = self.string(table, "listen", path: path) {
            switch ValueParsers.listenAddress(listen) {
            case .success(let address): admin.listen = address
            case .failure(let message):
                self.problem("\(path).listen", message)
                listenIsValid = false
            }
        }
        admin.allowRemote = self.bool(table, "allow_remote", path: path) ?? false
        var tokenGiven = false
        if let token = self.secret(table, fileKey: "token_file", envKey: "token_env", path: path) {
            tokenGiven = true
            if token.value.utf8.count < 16 {
                self.problem("\(path).token_file", "the admin token must be at least 16 characters")
            } else {
                admin.token = token
            }
        }
        // Readiness and metrics describe the deployment: beyond this host only on purpose,
        // and never without a token.
        if listenIsValid, !admin.listen.isLoopback {
            if !admin.allowRemote {
                self.problem(
                    "\(path).listen",
                    "\(admin.listen) is not a loopback address; to serve the admin endpoints beyond this host set allow_remote = true and a token (token_file or token_env)"
                )
            } else if !tokenGiven {
                self.problem("\(path).allow_remote", "a remote admin listener needs a token (token_file or token_env)")
            }
        }
        return admin
    }

    private func readCache(_ table: TOMLTable, into cache: inout CacheSettings) {
        let path = "cache"
        self.rejectUnknown(
            in: table,
            path: path,
            allowed: ["positive_ttl", "negative_ttl", "stale_grace", "max_entries", "negative_max_entries"]
        )
        self.duration(table, "positive_ttl", path: path).map { cache.positiveTTL = $0 }
        self.duration(table, "negative_ttl", path: path).map { cache.negativeTTL = $0 }
        self.duration(table, "stale_grace", path: path).map { cache.staleGrace = $0 }
        self.integer(table, "max_entries", path: path, range: 1...10_000_000).map { cache.maxEntries = $0 }
        self.integer(table, "negative_max_entries", path: path, range: 1...10_000_000).map {
            cache.negativeMaxEntries = $0
        }
    }

    private func readAPIKeys(_ table: TOMLTable, into settings: inout APIKeySettings) {
        let path = "auth.api_keys"
        self.rejectUnknown(
            in: table,
            path: path,
            allowed: [
                "pepper_file", "pepper_env", "forward_authorization", "max_keys_per_owner", "management_rate_limit",
                "failures_per_address", "failure_window",
            ]
        )
        if let pepper = self.secret(table, fileKey: "pepper_file", envKey: "pepper_env", path: path) {
            if pepper.value.utf8.count < 32 {
                self.problem(
                    "\(path).pepper_file",
                    "the pepper must be at least 32 bytes (e.g. `openssl rand -hex 32`)"
                )
            } else {
                settings.pepper = pepper
            }
        }
        self.bool(table, "forward_authorization", path: path).map { settings.forwardAuthorization = $0 }
        self.integer(table, "max_keys_per_owner", path: path, range: 1...100_000).map { settings.maxKeysPerOwner = $0 }
        settings.managementRateLimit = self.string(table, "management_rate_limit", path: path)
        self.integer(table, "failures_per_address", path: path, range: 0...100_000).map {
            settings.failuresPerAddress = $0
        }
        self.boundedDuration(table, "failure_window", path: path, .seconds(1)...(.seconds(3600))).map {
            settings.failureWindow = $0
        }
        // Counted per second, minute or hour: any other window is expressed per hour, which
        // must stay within a bucket's bounds.
        let window = Int(settings.failureWindow.components.seconds)
        if ![1, 60, 3600].contains(window),
            (settings.failuresPerAddress * 3600 + window - 1) / window > RateLimitPolicy.maximumTokens
        {
            self.problem(
                "\(path).failures_per_address",
                "\(settings.failuresPerAddress) per \(window)s is too many to count (at most 1000000 per hour)"
            )
        }
    }

    private static let knownScopes: Set<String> = [
        "read:databases", "write:databases", "read:policies", "write:policies", "read:alerts",
        "write:alerts", "read:logs", "read:reports", "admin",
    ]

    private static let knownMethods: Set<String> = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "*",
    ]

    private func readRateLimits(_ root: TOMLTable) -> [RateLimitPolicy] {
        guard let value = root["rate_limits"] else { return [] }
        guard let array = value.array else {
            self.problem("rate_limits", "must be an array of tables ([[rate_limits]])")
            return []
        }
        var policies: [RateLimitPolicy] = []
        var seen: Set<String> = []
        for (index, element) in array.enumerated() {
            let path = "rate_limits[\(index)]"
            guard let table = element.table else {
                self.problem(path, "must be a table ([[rate_limits]])")
                continue
            }
            self.rejectUnknown(
                in: table,
                path: path,
                allowed: ["name", "rate", "per", "burst", "on_store_unavailable"]
            )
            let name = self.string(table, "name", path: path)
            if let name {
                if !RateLimitPolicy.isValidName(name) {
                    self.problem("\(path).name", "must be 1-64 characters of A-Z a-z 0-9 _ . -")
                } else if !seen.insert(name).inserted {
                    self.problem("\(path).name", "\"\(name)\" is already defined by an earlier [[rate_limits]] entry")
                }
            } else if table["name"] == nil {
                self.problem("\(path).name", "is required (e.g. \"default\"); routes refer to the policy by it")
            }
            let tokens = 1...RateLimitPolicy.maximumTokens
            let rate = self.integer(table, "rate", path: path, range: tokens)
            if table["rate"] == nil {
                self.problem("\(path).rate", "is required: tokens added per `per` (e.g. rate = 100, per = \"minute\")")
            }
            var per: RateLimitPolicy.Period?
            if let text = self.string(table, "per", path: path) {
                per = RateLimitPolicy.Period(rawValue: text)
                if per == nil { self.problem("\(path).per", "must be \"second\", \"minute\" or \"hour\"") }
            } else if table["per"] == nil {
                self.problem("\(path).per", "is required: \"second\", \"minute\" or \"hour\"")
            }
            let burst = self.integer(table, "burst", path: path, range: tokens)
            let burstBad = table["burst"] != nil && burst == nil
            var onUnavailable = RateLimitPolicy.StoreUnavailablePolicy.local
            var onUnavailableBad = false
            if let text = self.string(table, "on_store_unavailable", path: path) {
                if let parsed = RateLimitPolicy.StoreUnavailablePolicy(rawValue: text) {
                    onUnavailable = parsed
                } else {
                    self.problem("\(path).on_store_unavailable", "must be \"local\" or \"deny\"")
                    onUnavailableBad = true
                }
            }
            guard let name, RateLimitPolicy.isValidName(name), let rate, let per, !burstBad, !onUnavailableBad else {
                continue
            }
            policies.append(
                RateLimitPolicy(name: name, rate: rate, per: per, burst: burst, onStoreUnavailable: onUnavailable)
            )
        }
        // A duplicate name is a problem already; keep the first so routes still resolve.
        var unique: Set<String> = []
        return policies.filter { unique.insert($0.name).inserted }
    }

    private func readRoutes(_ root: TOMLTable, policies: Set<String>) -> [RouteSettings] {
        guard let value = root["routes"] else { return [] }
        guard let array = value.array else {
            self.problem("routes", "must be an array of tables ([[routes]])")
            return []
        }
        var routes: [RouteSettings] = []
        for (index, element) in array.enumerated() {
            let path = "routes[\(index)]"
            guard let table = element.table else {
                self.problem(path, "must be a table ([[routes]])")
                continue
            }
            self.rejectUnknown(in: table, path: path, allowed: ["method", "path", "scopes", "public", "rate_limit"])
            var method: String?
            if let text = self.string(table, "method", path: path) {
                if Self.knownMethods.contains(text) {
                    method = text == "*" ? nil : text
                } else {
                    self.problem(
                        "\(path).method",
                        "must be one of \(Self.knownMethods.sorted().joined(separator: ", "))"
                    )
                }
            }
            guard let pattern = self.string(table, "path", path: path) else {
                if table["path"] == nil { self.problem("\(path).path", "is required (e.g. \"/v1/databases/*\")") }
                continue
            }
            if let message = ValueParsers.routePatternProblem(pattern) {
                self.problem("\(path).path", message)
                continue
            }
            let scopes = self.stringArray(table, "scopes", path: path) ?? []
            for scope in scopes where !Self.knownScopes.contains(scope) {
                self.problem(
                    "\(path).scopes",
                    "unknown scope \"\(scope)\" (known: \(Self.knownScopes.sorted().joined(separator: " ")))"
                )
            }
            let isPublic = self.bool(table, "public", path: path) ?? false
            if isPublic, !scopes.isEmpty {
                self.problem("\(path).public", "a public route cannot require scopes")
            }
            if !isPublic, scopes.isEmpty {
                self.problem("\(path).scopes", "list the scopes this route needs (or set public = true)")
            }
            let rateLimit = self.string(table, "rate_limit", path: path)
            if let rateLimit, !policies.contains(rateLimit) {
                let known = policies.isEmpty ? "none defined" : "defined: \(policies.sorted().joined(separator: ", "))"
                self.problem("\(path).rate_limit", "no [[rate_limits]] policy is named \"\(rateLimit)\" (\(known))")
            }
            routes.append(
                RouteSettings(method: method, path: pattern, scopes: scopes, isPublic: isPublic, rateLimit: rateLimit)
            )
        }
        return routes
    }

    private func readServer(_ table: TOMLTable, into server: inout ServerSettings) {
        let path = "server"
        self.rejectUnknown(
            in: table,
            path: path,
            allowed: [
                "listen", "event_loops", "max_connections", "max_header_bytes", "max_body_bytes",
                "header_timeout", "body_timeout", "idle_timeout", "drain_timeout", "unmatched_routes", "tls",
                "trusted_proxies",
            ]
        )
        if let tls = self.table(table, "tls", path: path) {
            server.tls = self.readServerTLS(tls)
        }
        if let values = self.stringArray(table, "listen", path: path) {
            var addresses: [ListenAddress] = []
            for value in values {
                switch ValueParsers.listenAddress(value) {
                case .success(let address): addresses.append(address)
                case .failure(let message): self.problem("\(path).listen", message)
                }
            }
            if values.isEmpty {
                self.problem("\(path).listen", "at least one address is required")
            } else if Set(addresses).count != addresses.count {
                self.problem("\(path).listen", "an address is listed twice")
            }
            server.listen = addresses
            server.listenIsExplicit = true
        }
        self.integer(table, "event_loops", path: path, range: 0...1024).map { server.eventLoops = $0 }
        self.integer(table, "max_connections", path: path, range: 1...1_000_000).map { server.maxConnections = $0 }
        self.size(table, "max_header_bytes", path: path, range: 1024...(1 << 20)).map {
            server.maxHeaderBytes = Int($0)
        }
        self.size(table, "max_body_bytes", path: path, range: 0...(1 << 40)).map { server.maxBodyBytes = $0 }
        self.duration(table, "header_timeout", path: path).map { server.headerTimeout = $0 }
        self.duration(table, "body_timeout", path: path).map { server.bodyTimeout = $0 }
        self.duration(table, "idle_timeout", path: path).map { server.idleTimeout = $0 }
        self.duration(table, "drain_timeout", path: path).map { server.drainTimeout = $0 }
        if let policy = self.string(table, "unmatched_routes", path: path) {
            if let parsed = ServerSettings.UnmatchedRoutePolicy(rawValue: policy) {
                server.unmatchedRoutes = parsed
            } else {
                self.problem("\(path).unmatched_routes", "must be \"deny\" or \"authenticate\"")
            }
        }
        if let entries = self.stringArray(table, "trusted_proxies", path: path) {
            switch TrustedProxies.parse(entries) {
            case .success(let proxies): server.trustedProxies = proxies
            case .failure(let message): self.problem("\(path).trusted_proxies", message)
            }
        }
    }

    private func readUpstream(_ table: TOMLTable) -> UpstreamSettings? {
        let path = "upstream"
        self.rejectUnknown(
            in: table,
            path: path,
            allowed: [
                "url", "connect_timeout", "response_timeout", "max_idle_connections_per_loop",
                "idle_timeout", "preserve_host", "ca_file", "client_certificate_file", "client_key_file",
                "tls_server_name", "forward_method_override",
            ]
        )
        var parsed: UpstreamSettings?
        if let url = self.string(table, "url", path: path) {
            switch ValueParsers.upstreamURL(url) {
            case .success(let (scheme, host, port)): parsed = UpstreamSettings(scheme: scheme, host: host, port: port)
            case .failure(let message): self.problem("\(path).url", message)
            }
        } else if table["url"] == nil {
            self.problem("\(path).url", "is required (e.g. \"http://127.0.0.1:9000\")")
        }
        // Validate the other keys even when the URL is bad, so every problem is reported.
        let urlIsValid = parsed != nil
        var upstream = parsed ?? UpstreamSettings(host: "invalid", port: 1)
        self.duration(table, "connect_timeout", path: path).map { upstream.connectTimeout = $0 }
        self.duration(table, "response_timeout", path: path).map { upstream.responseTimeout = $0 }
        self.integer(table, "max_idle_connections_per_loop", path: path, range: 0...100_000).map {
            upstream.maxIdleConnectionsPerLoop = $0
        }
        self.duration(table, "idle_timeout", path: path).map { upstream.idleTimeout = $0 }
        self.bool(table, "preserve_host", path: path).map { upstream.preserveHost = $0 }
        self.bool(table, "forward_method_override", path: path).map { upstream.forwardMethodOverride = $0 }
        upstream.caFile = self.readableFile(table, "ca_file", path: path)
        upstream.clientCertificateFile = self.readableFile(table, "client_certificate_file", path: path)
        upstream.clientKeyFile = self.readableFile(table, "client_key_file", path: path)
        if let name = self.string(table, "tls_server_name", path: path) {
            if name.isEmpty || name.utf8.count > 253
                || !name.allSatisfy({
                    $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == ":")
                })
            {
                self.problem("\(path).tls_server_name", "must be a host name or an IP address")
            } else {
                upstream.tlsServerName = name
            }
        }
        if (upstream.clientCertificateFile == nil) != (upstream.clientKeyFile == nil),
            table["client_certificate_file"] != nil || table["client_key_file"] != nil
        {
            self.problem("\(path).client_certificate_file", "client_certificate_file and client_key_file go together")
        }
        if urlIsValid, !upstream.isTLS {
            for key in ["ca_file", "client_certificate_file", "client_key_file", "tls_server_name"]
            where table[key] != nil {
                self.problem("\(path).\(key)", "only applies to an https:// upstream url")
            }
        }
        return urlIsValid ? upstream : nil
    }

    private func readServerTLS(_ table: TOMLTable) -> ServerTLSSettings? {
        let path = "server.tls"
        self.rejectUnknown(
            in: table,
            path: path,
            allowed: [
                "certificate_file", "private_key_file", "private_key_passphrase_file", "certificates", "min_version",
                "hsts", "hsts_max_age", "client_ca_file", "client_auth", "session_timeout", "handshake_timeout",
            ]
        )
        let certificate = self.readableFile(table, "certificate_file", path: path)
        let key = self.readableFile(table, "private_key_file", path: path)
        for required in ["certificate_file", "private_key_file"] where table[required] == nil {
            self.problem("\(path).\(required)", "is required in [server.tls] (a PEM file path)")
        }
        var settings = ServerTLSSettings(certificateFile: certificate ?? "", privateKeyFile: key ?? "")
        settings.privateKeyPassphrase = self.secret(
            table,
            fileKey: "private_key_passphrase_file",
            envKey: "",
            path: path
        )
        if let version = self.string(table, "min_version", path: path) {
            if let parsed = ServerTLSSettings.MinimumVersion(rawValue: version) {
                settings.minimumVersion = parsed
            } else {
                self.problem("\(path).min_version", "must be \"1.2\" or \"1.3\" (older versions are never enabled)")
            }
        }
        self.bool(table, "hsts", path: path).map { settings.hsts = $0 }
        self.integer(table, "hsts_max_age", path: path, range: 0...(2 * 31_536_000)).map {
            settings.hstsMaxAgeSeconds = $0
        }
        settings.clientCAFile = self.readableFile(table, "client_ca_file", path: path)
        if let mode = self.string(table, "client_auth", path: path) {
            if let parsed = ServerTLSSettings.ClientAuthentication(rawValue: mode) {
                settings.clientAuthentication = parsed
            } else {
                self.problem("\(path).client_auth", "must be \"none\", \"optional\" or \"required\"")
            }
        }
        if settings.clientAuthentication != .none, table["client_ca_file"] == nil {
            self.problem(
                "\(path).client_auth",
                "client_auth = \"\(settings.clientAuthentication.rawValue)\" needs client_ca_file"
            )
        }
        self.duration(table, "session_timeout", path: path).map { settings.sessionTimeout = $0 }
        self.duration(table, "handshake_timeout", path: path).map { settings.handshakeTimeout = $0 }
        if let value = table["certificates"] {
            if let array = value.array {
                for (index, element) in array.enumerated() {
                    let entryPath = "\(path).certificates[\(index)]"
                    guard let entry = element.table else {
                        self.problem(entryPath, "must be a table ([[server.tls.certificates]])")
                        continue
                    }
                    if let parsed = self.readSNICertificate(entry, path: entryPath) {
                        settings.certificates.append(parsed)
                    }
                }
            } else {
                self.problem("\(path).certificates", "must be an array of tables ([[server.tls.certificates]])")
            }
        }
        var seen: Set<String> = []
        for entry in settings.certificates {
            for name in entry.serverNames where !seen.insert(name).inserted {
                self.problem("\(path).certificates", "server name \"\(name)\" is listed twice")
            }
        }
        guard certificate != nil, key != nil else { return nil }
        return settings
    }

    private func readSNICertificate(_ table: TOMLTable, path: String) -> ServerTLSSettings.SNICertificate? {
        self.rejectUnknown(
            in: table,
            path: path,
            allowed: ["server_names", "certificate_file", "private_key_file", "private_key_passphrase_file"]
        )
        let names = self.stringArray(table, "server_names", path: path) ?? []
        if names.isEmpty {
            self.problem("\(path).server_names", "list the host names this certificate serves (SNI)")
        }
        var valid: [String] = []
        for name in names {
            let lower = name.lowercased()
            let body = lower.hasPrefix("*.") ? String(lower.dropFirst(2)) : lower
            if body.isEmpty || body.hasPrefix(".") || body.hasSuffix(".") || body.contains("*")
                || !body.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") })
            {
                self.problem("\(path).server_names", "\"\(name)\" is not a host name (a leading *. is allowed)")
            } else {
                valid.append(lower)
            }
        }
        let certificate = self.readableFile(table, "certificate_file", path: path)
        let key = self.readableFile(table, "private_key_file", path: path)
        for required in ["certificate_file", "private_key_file"] where table[required] == nil {
            self.problem("\(path).\(required)", "is required (a PEM file path)")
        }
        guard let certificate, let key, valid.count == names.count, !valid.isEmpty else { return nil }
        var entry = ServerTLSSettings.SNICertificate(
            serverNames: valid,
            certificateFile: certificate,
            privateKeyFile: key
        )
        entry.privateKeyPassphrase = self.secret(table, fileKey: "private_key_passphrase_file", envKey: "", path: path)
        return entry
    }

    /// A path that must name a readable file (certificates, keys, CA bundles). Their
    /// contents are checked when the TLS contexts are built (start, reload, check-config).
    func readableFile(_ table: TOMLTable, _ key: String, path: String) -> String? {
        guard let file = self.string(table, key, path: path) else { return nil }
        guard !file.isEmpty, FileManager.default.isReadableFile(atPath: file) else {
            self.problem("\(path).\(key)", "\(file) does not exist or cannot be read")
            return nil
        }
        return file
    }

    private func readLogging(_ table: TOMLTable, into logging: inout LoggingSettings) {
        let path = "logging"
        self.rejectUnknown(in: table, path: path, allowed: ["level", "format", "access_log", "access_log_sample_rate"])
        if let level = self.string(table, "level", path: path) {
            if let parsed = LoggingSettings.Level(rawValue: level) {
                logging.level = parsed
            } else {
                let names = LoggingSettings.Level.allCases.map(\.rawValue).joined(separator: ", ")
                self.problem("\(path).level", "must be one of \(names)")
            }
        }
        if let format = self.string(table, "format", path: path) {
            if let parsed = LoggingSettings.Format(rawValue: format) {
                logging.format = parsed
            } else {
                self.problem("\(path).format", "must be \"json\" or \"text\"")
            }
        }
        self.bool(table, "access_log", path: path).map { logging.accessLog = $0 }
        if let value = table["access_log_sample_rate"] {
            let rate = value.double ?? value.int.map(Double.init)
            if let rate, rate >= 0, rate <= 1 {
                logging.accessLogSampleRate = rate
            } else {
                self.problem("\(path).access_log_sample_rate", "must be a number from 0.0 to 1.0")
            }
        }
    }

    // MARK: typed accessors: each reports a problem and returns nil on a bad value

    func rejectUnknown(in table: TOMLTable, path: String, allowed: Set<String>) {
        for key in table.keys.sorted() where !allowed.contains(key) {
            let full = path.isEmpty ? key : "\(path).\(key)"
            let known = allowed.sorted().joined(separator: ", ")
            self.problem(full, "unknown key (known here: \(known))")
        }
    }

    func table(_ table: TOMLTable, _ key: String, path: String) -> TOMLTable? {
        guard let value = table[key] else { return nil }
        let full = path.isEmpty ? key : "\(path).\(key)"
        guard let result = value.table else {
            self.problem(full, "must be a table ([\(full)])")
            return nil
        }
        return result
    }

    func string(_ table: TOMLTable, _ key: String, path: String) -> String? {
        guard let value = table[key] else { return nil }
        guard let result = value.string else {
            self.problem("\(path).\(key)", "must be a string")
            return nil
        }
        return result
    }

    func bool(_ table: TOMLTable, _ key: String, path: String) -> Bool? {
        guard let value = table[key] else { return nil }
        guard let result = value.bool else {
            self.problem("\(path).\(key)", "must be true or false")
            return nil
        }
        return result
    }

    func integer(_ table: TOMLTable, _ key: String, path: String, range: ClosedRange<Int>) -> Int? {
        guard let value = table[key] else { return nil }
        guard let result = value.int else {
            self.problem("\(path).\(key)", "must be an integer")
            return nil
        }
        guard range.contains(result) else {
            self.problem("\(path).\(key)", "must be between \(range.lowerBound) and \(range.upperBound)")
            return nil
        }
        return result
    }

    func stringArray(_ table: TOMLTable, _ key: String, path: String) -> [String]? {
        guard let value = table[key] else { return nil }
        guard let array = value.array else {
            self.problem("\(path).\(key)", "must be an array of strings")
            return nil
        }
        var result: [String] = []
        for element in array {
            guard let string = element.string else {
                self.problem("\(path).\(key)", "must be an array of strings")
                return nil
            }
            result.append(string)
        }
        return result
    }

    /// A secret from `fileKey` (a path; one trailing newline dropped) or `envKey` (a
    /// variable name). The value never appears in a problem message.
    func secret(_ table: TOMLTable, fileKey: String, envKey: String, path: String) -> Secret? {
        let file = self.string(table, fileKey, path: path)
        let env = envKey.isEmpty ? nil : self.string(table, envKey, path: path)
        if file != nil, env != nil {
            self.problem("\(path).\(fileKey)", "set \(fileKey) or \(envKey), not both")
            return nil
        }
        if let file {
            guard let data = FileManager.default.contents(atPath: file), data.count <= 4096,
                var text = String(data: data, encoding: .utf8)
            else {
                self.problem("\(path).\(fileKey)", "\(file) cannot be read (or is larger than 4 KiB)")
                return nil
            }
            if text.hasSuffix("\n") { text.removeLast() }
            if text.hasSuffix("\r") { text.removeLast() }
            guard !text.isEmpty else {
                self.problem("\(path).\(fileKey)", "\(file) is empty")
                return nil
            }
            return Secret(text)
        }
        if let env {
            guard let value = ProcessInfo.processInfo.environment[env], !value.isEmpty else {
                self.problem("\(path).\(envKey)", "environment variable \(env) is not set or empty")
                return nil
            }
            return Secret(value)
        }
        return nil
    }

    func duration(
        _ table: TOMLTable,
        _ key: String,
        path: String,
        allowZero: Bool = false,
        maximum: Duration = .seconds(86_400)
    ) -> Duration? {
        guard let value = table[key] else { return nil }
        guard let text = value.string else {
            self.problem("\(path).\(key)", "must be a duration string such as \"500ms\", \"10s\", \"5m\" or \"1h\"")
            return nil
        }
        switch ValueParsers.duration(text, allowZero: allowZero, maximum: maximum) {
        case .success(let duration): return duration
        case .failure(let message):
            self.problem("\(path).\(key)", message)
            return nil
        }
    }

    func size(_ table: TOMLTable, _ key: String, path: String, range: ClosedRange<Int64>) -> Int64? {
        guard let value = table[key] else { return nil }
        let bytes: Int64
        if let integer = value.int {
            bytes = Int64(integer)
        } else if let text = value.string {
            switch ValueParsers.size(text) {
            case .success(let parsed): bytes = parsed
            case .failure(let message):
                self.problem("\(path).\(key)", message)
                return nil
            }
        } else {
            self.problem("\(path).\(key)", "must be a byte count or a size string such as \"64KiB\" or \"10MiB\"")
            return nil
        }
        guard range.contains(bytes) else {
            self.problem("\(path).\(key)", "must be between \(range.lowerBound) and \(range.upperBound) bytes")
            return nil
        }
        return bytes
    }
}
