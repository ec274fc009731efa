extension GatewayConfiguration {
    /// The effective configuration as TOML, every default spelled out, for
    /// `check-config`. Secrets are never rendered: keys holding one print `"<redacted>"`.
    package func renderedTOML() -> String {
        func quote(_ s: String) -> String {
            var out = ""
            out.unicodeScalars.append("\"")
            for scalar in s.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                default:
                    if scalar.value < 0x20 || scalar.value == 0x7F {
                        out +=
                            "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                            + String(scalar.value, radix: 16)
                    } else {
                        out.unicodeScalars.append(scalar)
                    }
                }
            }
            out.unicodeScalars.append("\"")
            return out
        }
        func duration(_ d: Duration) -> String { quote(ValueParsers.text(of: d)) }
        var lines: [String] = []
        lines.append("[server]")
        lines.append("listen = [\(self.server.listen.map { quote($0.description) }.joined(separator: ", "))]")
        lines.append("event_loops = \(self.server.eventLoops)")
        lines.append("max_connections = \(self.server.maxConnections)")
        lines.append("max_header_bytes = \(self.server.maxHeaderBytes)")
        lines.append("max_body_bytes = \(self.server.maxBodyBytes)")
        lines.append("header_timeout = \(duration(self.server.headerTimeout))")
        lines.append("body_timeout = \(duration(self.server.bodyTimeout))")
        lines.append("idle_timeout = \(duration(self.server.idleTimeout))")
        lines.append("drain_timeout = \(duration(self.server.drainTimeout))")
        lines.append("unmatched_routes = \(quote(self.server.unmatchedRoutes.rawValue))")
        lines.append(
            "trusted_proxies = [\(self.server.trustedProxies.networks.map { quote($0.description) }.joined(separator: ", "))]"
        )
        if let tls = self.server.tls {
            lines.append("")
            lines.append("[server.tls]")
            lines.append("certificate_file = \(quote(tls.certificateFile))")
            lines.append("private_key_file = \(quote(tls.privateKeyFile))")
            if tls.privateKeyPassphrase != nil {
                lines.append("# private key passphrase: <redacted> (from private_key_passphrase_file)")
            }
            lines.append("min_version = \(quote(tls.minimumVersion.rawValue))")
            lines.append("hsts = \(tls.hsts)")
            lines.append("hsts_max_age = \(tls.hstsMaxAgeSeconds)")
            if let ca = tls.clientCAFile { lines.append("client_ca_file = \(quote(ca))") }
            lines.append("client_auth = \(quote(tls.clientAuthentication.rawValue))")
            lines.append("session_timeout = \(duration(tls.sessionTimeout))")
            lines.append("handshake_timeout = \(duration(tls.handshakeTimeout))")
            for entry in tls.certificates {
                lines.append("")
                lines.append("[[server.tls.certificates]]")
                lines.append("server_names = [\(entry.serverNames.map(quote).joined(separator: ", "))]")
                lines.append("certificate_file = \(quote(entry.certificateFile))")
                lines.append("private_key_file = \(quote(entry.privateKeyFile))")
                if entry.privateKeyPassphrase != nil { lines.append("# private key passphrase: <redacted>") }
            }
        }
        lines.append("")
        lines.append("[upstream]")
        lines.append("url = \(quote(self.upstream.url))")
        lines.append("connect_timeout = \(duration(self.upstream.connectTimeout))")
        lines.append("response_timeout = \(duration(self.upstream.responseTimeout))")
        lines.append("max_idle_connections_per_loop = \(self.upstream.maxIdleConnectionsPerLoop)")
        lines.append("idle_timeout = \(duration(self.upstream.idleTimeout))")
        lines.append("preserve_host = \(self.upstream.preserveHost)")
        lines.append("forward_method_override = \(self.upstream.forwardMethodOverride)")
        if self.upstream.isTLS {
            if let ca = self.upstream.caFile {
                lines.append("ca_file = \(quote(ca))")
            } else {
                lines.append("# ca_file not set: the system CA store is trusted")
            }
            if let certificate = self.upstream.clientCertificateFile {
                lines.append("client_certificate_file = \(quote(certificate))")
            }
            if let key = self.upstream.clientKeyFile { lines.append("client_key_file = \(quote(key))") }
            lines.append("tls_server_name = \(quote(self.upstream.effectiveTLSServerName))")
        }
        lines.append("")
        lines.append("[logging]")
        lines.append("level = \(quote(self.logging.level.rawValue))")
        lines.append("format = \(quote(self.logging.format.rawValue))")
        lines.append("access_log = \(self.logging.accessLog)")
        lines.append("access_log_sample_rate = \(self.logging.accessLogSampleRate)")
        if let redis = self.redis {
            lines.append("")
            lines.append("[redis]")
            if let sentinel = redis.sentinel {
                let nodes = sentinel.nodes.map { node -> String in
                    guard case .tcp(let host, let port) = node else { return quote(node.description) }
                    return quote(host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
                }
                lines.append("sentinels = [\(nodes.joined(separator: ", "))]")
                lines.append("master_name = \(quote(sentinel.masterName))")
                if let username = sentinel.username { lines.append("sentinel_username = \(quote(username))") }
                if sentinel.password != nil {
                    lines.append(
                        "# sentinel password: <redacted> (from sentinel_password_file or sentinel_password_env)"
                    )
                }
            } else if let cluster = redis.cluster {
                let nodes = cluster.nodes.map { node -> String in
                    guard case .tcp(let host, let port) = node else { return quote(node.description) }
                    return quote(host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
                }
                lines.append("cluster_nodes = [\(nodes.joined(separator: ", "))]")
            } else {
                lines.append("url = \(quote(redis.endpoint.description))")
            }
            if let tls = redis.tls {
                lines.append("tls = true")
                if let file = tls.caFile { lines.append("ca_file = \(quote(file))") }
                if let file = tls.clientCertificateFile { lines.append("client_certificate_file = \(quote(file))") }
                if let file = tls.clientKeyFile { lines.append("client_key_file = \(quote(file))") }
                if let name = tls.serverName { lines.append("tls_server_name = \(quote(name))") }
            }
            if let username = redis.username { lines.append("username = \(quote(username))") }
            if redis.password != nil { lines.append("# password: <redacted> (from password_file or password_env)") }
            lines.append("database = \(redis.database)")
            lines.append("connect_timeout = \(duration(redis.connectTimeout))")
            lines.append("command_timeout = \(duration(redis.commandTimeout))")
            lines.append("key_prefix = \(quote(redis.keyPrefix))")
        } else {
            lines.append("")
            lines.append("# [redis] not configured: credentials are kept in this process only")
        }
        if let admin = self.admin {
            lines.append("")
            lines.append("[admin]")
            lines.append("listen = \(quote(admin.listen.description))")
            lines.append("allow_remote = \(admin.allowRemote)")
            if admin.token != nil { lines.append("# token: <redacted> (from token_file or token_env)") }
        }
        lines.append("")
        lines.append("[cache]")
        lines.append("positive_ttl = \(duration(self.cache.positiveTTL))")
        lines.append("negative_ttl = \(duration(self.cache.negativeTTL))")
        lines.append("stale_grace = \(duration(self.cache.staleGrace))")
        lines.append("max_entries = \(self.cache.maxEntries)")
        lines.append("negative_max_entries = \(self.cache.negativeMaxEntries)")
        lines.append("")
        lines.append("[auth.api_keys]")
        lines.append(
            self.apiKeys.pepper == nil
                ? "# pepper: none configured; a random one is generated at start (keys die with the process)"
                : "# pepper: <redacted> (from pepper_file or pepper_env)"
        )
        lines.append("forward_authorization = \(self.apiKeys.forwardAuthorization)")
        lines.append("max_keys_per_owner = \(self.apiKeys.maxKeysPerOwner)")
        lines.append(
            self.apiKeys.managementRateLimit.map { "management_rate_limit = \(quote($0))" }
                ?? "# management_rate_limit: built-in, 30 at once then 60 per minute per caller"
        )
        lines.append("failures_per_address = \(self.apiKeys.failuresPerAddress)")
        lines.append("failure_window = \(duration(self.apiKeys.failureWindow))")
        self.renderJWT(into: &lines, quote: quote, duration: duration)
        lines.append("")
        lines.append("[ui]")
        lines.append("session_idle_timeout = \(duration(self.ui.sessionIdleTimeout))")
        lines.append("session_lifetime = \(duration(self.ui.sessionLifetime))")
        if let enabled = self.ui.enabled { lines.append("enabled = \(enabled)") }
        lines.append("path_prefix = \"\(self.ui.pathPrefix)\"")
        self.renderIntrospection(into: &lines, quote: quote, duration: duration)
        for policy in self.rateLimits {
            lines.append("")
            lines.append("[[rate_limits]]")
            lines.append("name = \(quote(policy.name))")
            lines.append("rate = \(policy.rate)")
            lines.append("per = \(quote(policy.per.rawValue))")
            lines.append("burst = \(policy.burst)")
            lines.append("on_store_unavailable = \(quote(policy.onStoreUnavailable.rawValue))")
        }
        if let oauth = self.oauth {
            lines.append("")
            lines.append("[oauth]")
            lines.append("code_ttl = \(duration(oauth.codeTTL))")
            lines.append("token_requests_per_client = \(oauth.tokenRequestsPerClient)")
            lines.append("token_requests_per_address = \(oauth.tokenRequestsPerAddress)")
            for client in oauth.clients {
                lines.append("")
                lines.append("[[oauth.clients]]")
                lines.append("id = \(quote(client.id))")
                lines.append("name = \(quote(client.name))")
                lines.append("redirect_uris = [\(client.redirectURIs.map(quote).joined(separator: ", "))]")
                lines.append(
                    "grant_types = [\(client.grantTypes.sorted().map { quote($0.rawValue) }.joined(separator: ", "))]"
                )
                lines.append("scopes = [\(client.scopes.map(quote).joined(separator: ", "))]")
                lines.append("public = \(client.isPublic)")
                lines.append("token_format = \(quote(client.tokenFormat.rawValue))")
                lines.append("resource_server = \(client.isResourceServer)")
                if client.secret != nil { lines.append("# secret: <redacted> (from secret_file or secret_env)") }
            }
        }
        if let sso = self.sso {
            lines.append("")
            lines.append("[sso]")
            lines.append("password_login = \(sso.passwordLogin)")
            for provider in sso.providers {
                lines.append("")
                lines.append("[[sso.providers]]")
                lines.append("name = \(quote(provider.name))")
                lines.append("display_name = \(quote(provider.displayName))")
                lines.append("issuer = \(quote(provider.issuer))")
                if let caFile = provider.caFile { lines.append("ca_file = \(quote(caFile))") }
                lines.append("client_id = \(quote(provider.clientID))")
                lines.append("# client_secret: <redacted> (from client_secret_file or client_secret_env)")
                lines.append("scopes = [\(provider.scopes.map(quote).joined(separator: ", "))]")
                lines.append("allowed_domains = [\(provider.allowedDomains.map(quote).joined(separator: ", "))]")
                lines.append("email_claim = \(quote(provider.emailClaim))")
                lines.append("require_email_verified = \(provider.requireEmailVerified)")
                lines.append("default_scopes = [\(provider.defaultScopes.map(quote).joined(separator: ", "))]")
                lines.append("algorithms = [\(provider.algorithms.map(quote).joined(separator: ", "))]")
                lines.append("timeout = \(duration(provider.timeout))")
                for rule in provider.scopeRules {
                    lines.append("")
                    lines.append("[[sso.providers.scope_rules]]")
                    lines.append("claim = \(quote(rule.claim))")
                    lines.append("value = \(quote(rule.value))")
                    lines.append("scopes = [\(rule.scopes.map(quote).joined(separator: ", "))]")
                }
            }
        }
        for route in self.routes {
            lines.append("")
            lines.append("[[routes]]")
            lines.append("method = \(quote(route.method ?? "*"))")
            lines.append("path = \(quote(route.path))")
            lines.append("scopes = [\(route.scopes.map(quote).joined(separator: ", "))]")
            if route.isPublic { lines.append("public = true") }
            if let rateLimit = route.rateLimit { lines.append("rate_limit = \(quote(rateLimit))") }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private func renderIntrospection(
        into lines: inout [String],
        quote: (String) -> String,
        duration: (Duration) -> String
    ) {
        for entry in self.introspection {
            lines.append("")
            lines.append("[[auth.oauth.introspection]]")
            lines.append("endpoint = \(quote(entry.endpoint))")
            lines.append("client_id = \(quote(entry.clientID))")
            lines.append("# client secret: <redacted> (from client_secret_file or client_secret_env)")
            if let caFile = entry.caFile { lines.append("ca_file = \(quote(caFile))") }
            lines.append("timeout = \(duration(entry.timeout))")
            lines.append("cache_max = \(duration(entry.cacheMax))")
            lines.append("negative_ttl = \(duration(entry.negativeTTL))")
        }
    }

    private func renderJWT(into lines: inout [String], quote: (String) -> String, duration: (Duration) -> String) {
        let jwt = self.jwt
        guard jwt.issuer != nil || !jwt.issuers.isEmpty else { return }
        lines.append("")
        lines.append("[auth.jwt]")
        if let issuer = jwt.issuer { lines.append("issuer = \(quote(issuer))") }
        lines.append("audience = \(quote(jwt.audience))")
        lines.append("access_token_ttl = \(duration(jwt.accessTokenTTL))")
        lines.append("refresh_token_ttl = \(duration(jwt.refreshTokenTTL))")
        lines.append(
            "refresh_reuse_grace = \(jwt.refreshReuseGrace == .zero ? quote("0s") : duration(jwt.refreshReuseGrace))"
        )
        lines.append("leeway = \(duration(jwt.leeway))")
        lines.append("max_token_lifetime = \(duration(jwt.maxTokenLifetime))")
        lines.append("verified_cache_entries = \(jwt.verifiedCacheEntries)")
        lines.append("password_hash_cost = \(jwt.passwordHashCost)")
        lines.append("login_attempts_per_address = \(jwt.loginAttemptsPerAddress)")
        lines.append("login_attempts_per_account = \(jwt.loginAttemptsPerAccount)")
        lines.append("login_window = \(duration(jwt.loginWindow))")
        for key in jwt.signingKeys {
            lines.append("")
            lines.append("[[auth.jwt.signing_keys]]")
            lines.append("kid = \(quote(key.keyID))")
            lines.append("algorithm = \(quote(key.algorithm.rawValue))")
            lines.append("private_key_file = \(quote(key.privateKeyFile))")
            if key.passphrase != nil { lines.append("# passphrase: <redacted>") }
            lines.append("active = \(key.active)")
        }
        for issuer in jwt.issuers {
            lines.append("")
            lines.append("[[auth.jwt.issuers]]")
            lines.append("issuer = \(quote(issuer.issuer))")
            switch issuer.keySource {
            case .jwksURL(let url): lines.append("jwks_url = \(quote(url))")
            case .discovery(let url): lines.append("discovery_url = \(quote(url))")
            case .file(let path, _): lines.append("jwks_file = \(quote(path))")
            }
            lines.append("audiences = [\(issuer.audiences.map(quote).joined(separator: ", "))]")
            if let type = issuer.requiredType { lines.append("required_type = \(quote(type))") }
            if !issuer.algorithms.isEmpty {
                lines.append("algorithms = [\(issuer.algorithms.map(quote).joined(separator: ", "))]")
            }
            lines.append("min_refresh_interval = \(duration(issuer.minRefreshInterval))")
            lines.append("max_refresh_interval = \(duration(issuer.maxRefreshInterval))")
            lines.append("unknown_kid_refetch_interval = \(duration(issuer.unknownKeyRefetchInterval))")
            lines.append("fetch_timeout = \(duration(issuer.fetchTimeout))")
            if let caFile = issuer.caFile { lines.append("ca_file = \(quote(caFile))") }
            if !issuer.requireSubject { lines.append("require_subject = false") }
        }
    }
}
