import Foundation
import GatewayConfig
import GatewayTestSupport
import Testing

/// `[auth.jwt]`, `[[auth.jwt.signing_keys]]` and `[[auth.jwt.issuers]]`: a valid setup
/// parses; each mistake is a problem naming its key and line.
@Suite struct ConfigurationLoaderJWTTests {
    private static let upstream = "[upstream]\nurl = \"http://127.0.0.1:9000\"\n"

    private func file(_ contents: String) throws -> String {
        try temporaryFile(contents, prefix: "dbgw-jwt")
    }

    /// The problems of `text` after the 2 upstream lines.
    private func problems(_ text: String) -> [ConfigurationError.Problem] {
        configurationProblems(Self.upstream + text, file: "g.conf")
    }

    /// The problem for `key`, which must exist, be unique for that key, and sit on `line`
    /// of the text after the 2 upstream lines.
    private func expectProblem(
        _ text: String,
        key: String,
        line: Int,
        containing: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let found = problems(text)
        let matching = found.filter { $0.key == key }
        #expect(matching.count == 1, "\(found)", sourceLocation: sourceLocation)
        guard let problem = matching.first else { return }
        #expect(problem.file == "g.conf", sourceLocation: sourceLocation)
        #expect(problem.line == line + 2, "\(problem)", sourceLocation: sourceLocation)
        #expect(problem.message.contains(containing), "\(problem.message)", sourceLocation: sourceLocation)
        #expect(
            problem.description.hasPrefix("g.conf:\(line + 2): \(key): "),
            "\(problem.description)",
            sourceLocation: sourceLocation
        )
    }

    @Test func validJWTSectionParses() throws {
        let key1 = try file("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        let key2 = try file("-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n")
        let jwks = try file(#"{"keys":[]}"#)
        let text = """
            [auth.jwt]
            issuer = "https://gateway.example.com"
            audience = "dbaudit"
            access_token_ttl = "15m"
            refresh_token_ttl = "12h"
            leeway = "30s"
            max_token_lifetime = "2h"
            verified_cache_entries = 500
            password_hash_cost = 12
            login_attempts_per_address = 10
            login_attempts_per_account = 3
            login_window = "5m"

            [[auth.jwt.signing_keys]]
            kid = "2026-01"
            algorithm = "ES256"
            private_key_file = "\(key1)"
            active = true

            [[auth.jwt.signing_keys]]
            kid = "2025-12"
            private_key_file = "\(key2)"

            [[auth.jwt.issuers]]
            issuer = "https://login.example.org/"
            jwks_url = "https://login.example.org/keys"
            audiences = ["api://dbaudit"]
            required_type = "at+jwt"
            algorithms = ["RS256", "ES256"]
            min_refresh_interval = "2m"
            max_refresh_interval = "2h"
            unknown_kid_refetch_interval = "10s"
            fetch_timeout = "3s"

            [[auth.jwt.issuers]]
            issuer = "https://accounts.example.net"
            discovery_url = "https://accounts.example.net/.well-known/openid-configuration"

            [[auth.jwt.issuers]]
            issuer = "internal"
            jwks_file = "\(jwks)"
            """
        let configuration = try ConfigurationLoader.parse(text: Self.upstream + text, file: "g.conf")
        let jwt = configuration.jwt
        #expect(jwt.issuer == "https://gateway.example.com" && jwt.audience == "dbaudit")
        #expect(jwt.accessTokenTTL == .seconds(900) && jwt.refreshTokenTTL == .seconds(12 * 3600))
        #expect(jwt.leeway == .seconds(30) && jwt.maxTokenLifetime == .seconds(7200))
        #expect(jwt.verifiedCacheEntries == 500 && jwt.passwordHashCost == 12)
        #expect(
            jwt.loginAttemptsPerAddress == 10 && jwt.loginAttemptsPerAccount == 3 && jwt.loginWindow == .seconds(300)
        )
        #expect(jwt.signingKeys.map(\.keyID) == ["2026-01", "2025-12"])
        #expect(jwt.signingKeys.map(\.algorithm) == [.es256, .rs256])
        #expect(jwt.activeSigningKey?.keyID == "2026-01")
        #expect(jwt.signingKeys[0].privateKeyPEM.value.contains("AAAA") && jwt.signingKeys[0].privateKeyFile == key1)
        #expect(jwt.issuers.count == 3)
        let first = jwt.issuers[0]
        #expect(first.keySource == .jwksURL("https://login.example.org/keys"))
        #expect(
            first.audiences == ["api://dbaudit"] && first.requiredType == "at+jwt"
                && first.algorithms == ["RS256", "ES256"]
        )
        #expect(first.minRefreshInterval == .seconds(120) && first.maxRefreshInterval == .seconds(7200))
        #expect(first.unknownKeyRefetchInterval == .seconds(10) && first.fetchTimeout == .seconds(3))
        #expect(jwt.issuers[1].keySource == .discovery("https://accounts.example.net/.well-known/openid-configuration"))
        // Audiences default to [auth.jwt] audience.
        #expect(jwt.issuers[1].audiences == ["dbaudit"])
        #expect(
            jwt.issuers[1].minRefreshInterval == .seconds(60) && jwt.issuers[1].maxRefreshInterval == .seconds(3600)
        )
        guard case .file(let path, let contents) = jwt.issuers[2].keySource else {
            Issue.record("expected a file source")
            return
        }
        #expect(path == jwks && contents.value == #"{"keys":[]}"#)
        // Private key text never shows in the rendered configuration.
        #expect(!String(describing: configuration).contains("AAAA"))
    }

    @Test func defaults() throws {
        let jwt = try ConfigurationLoader.parse(text: Self.upstream, file: "g.conf").jwt
        #expect(jwt.issuer == nil && jwt.signingKeys.isEmpty && jwt.issuers.isEmpty)
        #expect(jwt.audience == "dbaudit-api" && jwt.accessTokenTTL == .seconds(3600) && jwt.leeway == .seconds(60))
        #expect(jwt.maxTokenLifetime == .seconds(86400) && jwt.passwordHashCost == 15)
    }

    @Test func noActiveKey() throws {
        let key = try file("pem")
        // line 1 [auth.jwt]: problems about the signing_keys array as a whole point at the section.
        expectProblem(
            "[auth.jwt]\nissuer = \"i\"\n[[auth.jwt.signing_keys]]\nkid = \"a\"\nprivate_key_file = \"\(key)\"\n",
            key: "auth.jwt.signing_keys",
            line: 1,
            containing: "found 0"
        )
    }

    @Test func twoActiveKeys() throws {
        let key = try file("pem")
        expectProblem(
            """
            [auth.jwt]
            issuer = "i"
            [[auth.jwt.signing_keys]]
            kid = "a"
            private_key_file = "\(key)"
            active = true
            [[auth.jwt.signing_keys]]
            kid = "b"
            private_key_file = "\(key)"
            active = true
            """,
            key: "auth.jwt.signing_keys",
            line: 1,
            containing: "found 2"
        )
    }

    @Test func issuerWithoutKeys() {
        expectProblem("[auth.jwt]\nissuer = \"i\"\n", key: "auth.jwt.signing_keys", line: 1, containing: "at least one")
    }

    @Test func keysWithoutIssuer() throws {
        let key = try file("pem")
        let found = problems(
            "[auth.jwt]\n[[auth.jwt.signing_keys]]\nkid = \"a\"\nprivate_key_file = \"\(key)\"\nactive = true\n"
        )
        #expect(found.contains { $0.key == "auth.jwt.issuer" && $0.message.contains("issuer is not") }, "\(found)")
    }

    @Test func duplicateKid() throws {
        let key = try file("pem")
        expectProblem(
            """
            [auth.jwt]
            issuer = "i"
            [[auth.jwt.signing_keys]]
            kid = "a"
            private_key_file = "\(key)"
            active = true
            [[auth.jwt.signing_keys]]
            kid = "a"
            private_key_file = "\(key)"
            """,
            key: "auth.jwt.signing_keys[1].kid",
            line: 8,
            containing: "used twice"
        )
    }

    @Test(arguments: ["HS256", "none", "rs256", "PS256", "ES384", ""])
    func unknownSigningAlgorithm(name: String) throws {
        let key = try file("pem")
        expectProblem(
            """
            [auth.jwt]
            issuer = "i"
            [[auth.jwt.signing_keys]]
            kid = "a"
            algorithm = "\(name)"
            private_key_file = "\(key)"
            active = true
            """,
            key: "auth.jwt.signing_keys[0].algorithm",
            line: 5,
            containing: "RS256, ES256 or EdDSA"
        )
    }

    @Test func unknownIssuerAlgorithm() {
        expectProblem(
            """
            [auth.jwt]
            [[auth.jwt.issuers]]
            issuer = "x"
            jwks_url = "https://x.example/keys"
            algorithms = ["RS256", "none"]
            """,
            key: "auth.jwt.issuers[0].algorithms",
            line: 5,
            containing: "\"none\""
        )
    }

    @Test func missingKeyFile() {
        expectProblem(
            """
            [auth.jwt]
            issuer = "i"
            [[auth.jwt.signing_keys]]
            kid = "a"
            private_key_file = "/nonexistent/dbgw-key.pem"
            active = true
            """,
            key: "auth.jwt.signing_keys[0].private_key_file",
            line: 5,
            containing: "cannot be read"
        )
        expectProblem(
            """
            [auth.jwt]
            [[auth.jwt.issuers]]
            issuer = "x"
            jwks_file = "/nonexistent/jwks.json"
            """,
            key: "auth.jwt.issuers[0].jwks_file",
            line: 4,
            containing: "cannot be read"
        )
    }

    @Test func emptyKeyFile() throws {
        let empty = try file("")
        expectProblem(
            "[auth.jwt]\nissuer = \"i\"\n[[auth.jwt.signing_keys]]\nkid = \"a\"\nprivate_key_file = \"\(empty)\"\nactive = true\n",
            key: "auth.jwt.signing_keys[0].private_key_file",
            line: 5,
            containing: "empty"
        )
    }

    @Test func twoKeySources() throws {
        let jwks = try file(#"{"keys":[]}"#)
        expectProblem(
            """
            [auth.jwt]
            [[auth.jwt.issuers]]
            issuer = "x"
            jwks_url = "https://x.example/keys"
            jwks_file = "\(jwks)"
            """,
            key: "auth.jwt.issuers[0].jwks_url",
            line: 4,
            containing: "exactly one"
        )
        // None at all is the same problem.
        let none = problems("[auth.jwt]\n[[auth.jwt.issuers]]\nissuer = \"x\"\n")
        #expect(
            none.contains { $0.key == "auth.jwt.issuers[0].jwks_url" && $0.message.contains("exactly one") },
            "\(none)"
        )
    }

    @Test(arguments: [
        "ftp://x.example/keys", "file:///etc/jwks.json", "x.example/keys", "https://", "not a url",
        "javascript:alert(1)",
        "http://x.example/keys",  // plain http across a network
    ])
    func badURL(url: String) {
        expectProblem(
            "[auth.jwt]\n[[auth.jwt.issuers]]\nissuer = \"x\"\njwks_url = \"\(url)\"\n",
            key: "auth.jwt.issuers[0].jwks_url",
            line: 4,
            containing: "https://"
        )
        expectProblem(
            "[auth.jwt]\n[[auth.jwt.issuers]]\nissuer = \"x\"\ndiscovery_url = \"\(url)\"\n",
            key: "auth.jwt.issuers[0].discovery_url",
            line: 4,
            containing: "https://"
        )
    }

    @Test func issuerDuplicatedWithOwn() throws {
        let key = try file("pem")
        expectProblem(
            """
            [auth.jwt]
            issuer = "https://gw.example.com"
            [[auth.jwt.signing_keys]]
            kid = "a"
            private_key_file = "\(key)"
            active = true
            [[auth.jwt.issuers]]
            issuer = "https://gw.example.com"
            jwks_url = "https://gw.example.com/keys"
            """,
            key: "auth.jwt.issuers[0].issuer",
            line: 8,
            containing: "configured twice"
        )
    }

    @Test func issuerDuplicated() {
        expectProblem(
            """
            [auth.jwt]
            [[auth.jwt.issuers]]
            issuer = "x"
            jwks_url = "https://x.example/a"
            [[auth.jwt.issuers]]
            issuer = "x"
            jwks_url = "https://x.example/b"
            """,
            key: "auth.jwt.issuers[1].issuer",
            line: 6,
            containing: "configured twice"
        )
    }

    @Test func ttlLongerThanMaxLifetime() {
        expectProblem(
            "[auth.jwt]\naccess_token_ttl = \"2h\"\nmax_token_lifetime = \"1h\"\n",
            key: "auth.jwt.access_token_ttl",
            line: 2,
            containing: "max_token_lifetime"
        )
    }

    @Test func boundsOfDurationsAndNumbers() {
        expectProblem("[auth.jwt]\nleeway = \"11m\"\n", key: "auth.jwt.leeway", line: 2, containing: "between")
        expectProblem(
            "[auth.jwt]\naccess_token_ttl = \"10s\"\n",
            key: "auth.jwt.access_token_ttl",
            line: 2,
            containing: "between"
        )
        expectProblem(
            "[auth.jwt]\npassword_hash_cost = 9\n",
            key: "auth.jwt.password_hash_cost",
            line: 2,
            containing: "between"
        )
        expectProblem(
            "[auth.jwt]\npassword_hash_cost = 21\n",
            key: "auth.jwt.password_hash_cost",
            line: 2,
            containing: "between"
        )
        expectProblem(
            "[auth.jwt]\n[[auth.jwt.issuers]]\nissuer = \"x\"\njwks_url = \"https://x.example/k\"\nmin_refresh_interval = \"2h\"\nmax_refresh_interval = \"1h\"\n",
            key: "auth.jwt.issuers[0].min_refresh_interval",
            line: 5,
            containing: "must not exceed"
        )
        expectProblem(
            "[auth.jwt]\n[[auth.jwt.issuers]]\nissuer = \"x\"\njwks_url = \"https://x.example/k\"\nunknown_kid_refetch_interval = \"10ms\"\n",
            key: "auth.jwt.issuers[0].unknown_kid_refetch_interval",
            line: 5,
            containing: "between"
        )
    }

    /// refresh_token_ttl accepts 60s...400d, max_token_lifetime up to 30d, max_refresh_interval
    /// up to 7d and leeway from 0: the duration parser must not cap them at 24h or refuse 0.
    @Test(arguments: [
        ("refresh_token_ttl", "720h", "[auth.jwt]\nrefresh_token_ttl = \"720h\"\n"),
        ("max_token_lifetime", "48h", "[auth.jwt]\nmax_token_lifetime = \"48h\"\n"),
        ("leeway", "0s", "[auth.jwt]\nleeway = \"0s\"\n"),
    ])
    func documentedRangesCanBeWritten(key: String, value: String, text: String) {
        let found = problems(text)
        #expect(found.isEmpty, "\(found)")
    }

    @Test func longRefreshIntervalCanBeWritten() {
        let found = problems(
            "[auth.jwt]\n[[auth.jwt.issuers]]\nissuer = \"x\"\njwks_url = \"https://x.example/k\"\nmax_refresh_interval = \"48h\"\n"
        )
        #expect(found.isEmpty, "\(found)")
    }

    @Test func badKidsAndUnknownKeys() throws {
        let key = try file("pem")
        expectProblem(
            "[auth.jwt]\nissuer = \"i\"\n[[auth.jwt.signing_keys]]\nkid = \"has space\"\nprivate_key_file = \"\(key)\"\nactive = true\n",
            key: "auth.jwt.signing_keys[0].kid",
            line: 4,
            containing: "printable ASCII"
        )
        expectProblem(
            "[auth.jwt]\nissuer = \"i\"\n[[auth.jwt.signing_keys]]\nprivate_key_file = \"\(key)\"\nactive = true\n",
            key: "auth.jwt.signing_keys[0].kid",
            line: 3,
            containing: "required"
        )
        let unknown = problems("[auth.jwt]\nissuer_url = \"x\"\n")
        #expect(unknown.contains { $0.key.contains("issuer_url") && $0.line == 4 }, "\(unknown)")
        let unknownInIssuer = problems(
            "[auth.jwt]\n[[auth.jwt.issuers]]\nissuer = \"x\"\njwks_url = \"https://x.example/k\"\njku = \"y\"\n"
        )
        #expect(unknownInIssuer.contains { $0.key.contains("jku") && $0.line == 7 }, "\(unknownInIssuer)")
    }
}

@Suite struct KeyURLPolicyTests {
    @Test(arguments: [
        ("https://idp.example.com/jwks.json", true),
        ("http://127.0.0.1:8080/jwks.json", true),
        ("http://localhost/jwks.json", true),
        ("http://idp.example.com/jwks.json", false),  // keys in the clear across a network
        ("http://10.0.0.5/jwks.json", false),
        ("ftp://idp.example.com/jwks.json", false),
        ("https:///nohost", false),
    ])
    func allows(url: String, allowed: Bool) {
        #expect(KeyURLPolicy.allows(url) == allowed)
    }
}
