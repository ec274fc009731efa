import Foundation
import GatewayConfig
import GatewayTestSupport
import Testing

/// `[sso]`, `[[sso.providers]]` and `[[sso.providers.scope_rules]]`.
@Suite struct ConfigurationLoaderSSOTests {
    private func prelude() throws -> String {
        let pepper = try temporaryFile(String(repeating: "p", count: 40), prefix: "dbgw-sso-pepper")
        let key = try temporaryFile(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            prefix: "dbgw-sso-key"
        )
        return """
            [upstream]
            url = "http://127.0.0.1:9000"
            [redis]
            url = "redis://127.0.0.1:6379"
            [auth.api_keys]
            pepper_file = "\(pepper)"
            [auth.jwt]
            issuer = "https://gateway.example.com"
            [[auth.jwt.signing_keys]]
            kid = "k"
            private_key_file = "\(key)"
            active = true

            """
    }

    @Test func aFullProviderParsesWithItsDefaults() throws {
        let secret = try temporaryFile("client-secret\n", prefix: "dbgw-sso-secret")
        let text =
            try prelude() + """
                [sso]
                password_login = false
                [[sso.providers]]
                name = "keycloak"
                issuer = "https://sso.example.com/realms/staff"
                client_id = "dbaudit-gateway"
                client_secret_file = "\(secret)"
                allowed_domains = ["Example.com"]
                default_scopes = ["read:reports"]
                [[sso.providers.scope_rules]]
                claim = "groups"
                value = "dba"
                scopes = ["read:databases", "write:databases"]
                """
        let configuration = try ConfigurationLoader.parse(text: text, file: "g.conf")
        let sso = try #require(configuration.sso)
        #expect(!sso.passwordLogin)
        let provider = try #require(sso.provider(named: "keycloak"))
        #expect(provider.displayName == "keycloak")
        #expect(provider.clientSecret.value == "client-secret")
        #expect(provider.scopes == ["openid", "email", "profile"])
        #expect(provider.allowedDomains == ["example.com"])
        #expect(provider.emailClaim == "email" && provider.requireEmailVerified)
        #expect(provider.algorithms == ["RS256"])
        #expect(provider.discoveryURL == "https://sso.example.com/realms/staff/.well-known/openid-configuration")
        #expect(
            provider.scopeRules == [
                SSOScopeRule(claim: "groups", value: "dba", scopes: ["read:databases", "write:databases"])
            ]
        )
        #expect(!configuration.renderedTOML().contains("client-secret"))
    }

    @Test func mistakesAreProblemsNamingTheirKeys() throws {
        let secret = try temporaryFile("client-secret\n", prefix: "dbgw-sso-secret")
        let text =
            try prelude() + """
                [sso]
                [[sso.providers]]
                name = "Bad"
                issuer = "http://idp.example.com"
                client_id = "gw"
                client_secret_file = "\(secret)"
                [[sso.providers]]
                name = "ok"
                issuer = "https://idp.example.com"
                client_id = "gw"
                scopes = ["email"]
                allowed_domains = ["@example.com"]
                default_scopes = ["root"]
                timeout = "1m"
                [[sso.providers.scope_rules]]
                claim = "groups"
                value = "dba"
                scopes = ["superuser"]
                """
        let problems = configurationProblems(text, file: "g.conf")
        let keys = Set(problems.map(\.key))
        for key in [
            "sso.providers[0].name", "sso.providers[0].issuer", "sso.providers[1].client_secret_file",
            "sso.providers[1].scope_rules[0].scopes",
        ] {
            #expect(keys.contains(key), "\(problems)")
        }
        #expect(!problems.map(\.description).joined().contains("client-secret"))
    }

    @Test func ssoNeedsAnIssuerAndRedis() {
        let problems = configurationProblems(
            "[upstream]\nurl = \"http://127.0.0.1:9000\"\n[sso]\npassword_login = false\n",
            file: "g.conf"
        )
        let messages = problems.filter { $0.key.hasPrefix("sso") }.map(\.message)
        #expect(messages.contains { $0.contains("[auth.jwt] issuer") })
        #expect(messages.contains { $0.contains("[redis]") })
        #expect(messages.contains { $0.contains("nobody could sign in") })
    }

    @Test func loopbackHTTPIssuersAreAllowedForTests() throws {
        let secret = try temporaryFile("client-secret\n", prefix: "dbgw-sso-secret")
        let text =
            try prelude() + """
                [sso]
                [[sso.providers]]
                name = "local"
                issuer = "http://127.0.0.1:8080"
                client_id = "gw"
                client_secret_file = "\(secret)"
                default_scopes = ["read:logs"]
                """
        let configuration = try ConfigurationLoader.parse(text: text, file: "g.conf")
        #expect(configuration.sso?.providers.first?.issuer == "http://127.0.0.1:8080")
    }
}
