import GatewayCore
import TOMLKit

extension ConfigReader {
    /// `[oauth]` with its `[[oauth.clients]]`. `jwt` and `hasRedis` are the already-read
    /// sections it depends on.
    func readOAuth(_ table: TOMLTable, jwt: JWTSettings, hasRedis: Bool) -> OAuthSettings {
        let path = "oauth"
        self.rejectUnknown(
            in: table,
            path: path,
            allowed: ["code_ttl", "token_requests_per_client", "token_requests_per_address", "clients"]
        )
        var settings = OAuthSettings()
        if let issuer = jwt.issuer {
            // RFC 8414 §2: the issuer is an https URL without query or fragment; plain http
            // only on a loopback address (tests, a local demo).
            if !KeyURLPolicy.allows(issuer) || issuer.contains("?") || issuer.contains("#") {
                self.problem(
                    path,
                    "[auth.jwt] issuer must be an https:// URL without query or fragment to serve OAuth (http:// only on a loopback address)"
                )
            }
        } else {
            self.problem(
                path,
                "the authorization server signs with the gateway's issuer: set [auth.jwt] issuer and a signing key"
            )
        }
        if !hasRedis {
            self.problem(path, "clients, codes and consents are kept in Redis: configure [redis]")
        }
        if let ttl = self.duration(table, "code_ttl", path: path) {
            if ttl < .seconds(1) || ttl > .seconds(60) {
                self.problem("\(path).code_ttl", "must be between 1s and 60s")
            } else {
                settings.codeTTL = ttl
            }
        }
        self.integer(table, "token_requests_per_client", path: path, range: 1...1_000_000).map {
            settings.tokenRequestsPerClient = $0
        }
        self.integer(table, "token_requests_per_address", path: path, range: 1...1_000_000).map {
            settings.tokenRequestsPerAddress = $0
        }
        guard let value = table["clients"] else { return settings }
        guard let array = value.array else {
            self.problem("\(path).clients", "must be an array of tables ([[oauth.clients]])")
            return settings
        }
        var seen = Set<String>()
        for (index, element) in array.enumerated() {
            let entryPath = "\(path).clients[\(index)]"
            guard let entry = element.table else {
                self.problem(entryPath, "must be a table")
                continue
            }
            guard let client = self.readOAuthClient(entry, path: entryPath) else { continue }
            guard seen.insert(client.id).inserted else {
                self.problem("\(entryPath).id", "client id \"\(client.id)\" is declared twice")
                continue
            }
            settings.clients.append(client)
        }
        return settings
    }

    private func readOAuthClient(_ entry: TOMLTable, path: String) -> OAuthClientSettings? {
        self.rejectUnknown(
            in: entry,
            path: path,
            allowed: [
                "id", "name", "redirect_uris", "grant_types", "scopes", "public", "token_format", "resource_server",
                "secret_file",
                "secret_env",
            ]
        )
        var valid = true
        guard let id = self.string(entry, "id", path: path) else {
            if entry["id"] == nil { self.problem("\(path).id", "is required (e.g. \"reports-app\")") }
            return nil
        }
        if !OAuthClientID.isValid(id) {
            self.problem("\(path).id", "must be 1-\(OAuthClientID.maximumLength) characters of A-Z a-z 0-9 - . _ ~")
            valid = false
        }
        var client = OAuthClientSettings(id: id, name: self.string(entry, "name", path: path) ?? id)
        if let grants = self.stringArray(entry, "grant_types", path: path) {
            switch OAuthClientSettings.grantTypes(grants) {
            case .success(let parsed): client.grantTypes = parsed
            case .failure(let problem):
                self.problem("\(path).grant_types", problem.message)
                valid = false
            }
        }
        client.scopes = self.stringArray(entry, "scopes", path: path)?.uniquedKeepingOrder() ?? []
        client.redirectURIs = self.stringArray(entry, "redirect_uris", path: path)?.uniquedKeepingOrder() ?? []
        client.isPublic = self.bool(entry, "public", path: path) ?? false
        client.isResourceServer = self.bool(entry, "resource_server", path: path) ?? false
        if client.isPublic, client.isResourceServer {
            self.problem(
                "\(path).resource_server",
                "a public client cannot authenticate, so it cannot introspect tokens"
            )
            valid = false
        }
        if let format = self.string(entry, "token_format", path: path) {
            if let parsed = OAuthTokenFormat(rawValue: format) {
                client.tokenFormat = parsed
            } else {
                self.problem("\(path).token_format", "must be \"jwt\" or \"opaque\"")
                valid = false
            }
        }
        for problem in client.ruleProblems() {
            self.problem("\(path).\(problem.key)", problem.message)
            valid = false
        }
        let secret = self.secret(entry, fileKey: "secret_file", envKey: "secret_env", path: path)
        if client.isPublic {
            if entry["secret_file"] != nil || entry["secret_env"] != nil {
                self.problem(
                    "\(path).secret_file",
                    "a public client has no secret (remove secret_file/secret_env or set public = false)"
                )
                valid = false
            }
        } else if let secret {
            if let problem = OAuthClientSettings.secretProblem(secret.value) {
                // The value itself never appears in a message.
                self.problem("\(path).secret_file", problem)
                valid = false
            }
            client.secret = secret
        } else if entry["secret_file"] == nil && entry["secret_env"] == nil {
            self.problem(
                "\(path).secret_file",
                "a confidential client needs secret_file or secret_env (or public = true)"
            )
            valid = false
        } else {
            valid = false
        }
        return valid ? client : nil
    }
}

extension [String] {
    /// The elements without repeats, first occurrence kept.
    fileprivate func uniquedKeepingOrder() -> [String] {
        var seen = Set<String>()
        return self.filter { seen.insert($0).inserted }
    }
}
