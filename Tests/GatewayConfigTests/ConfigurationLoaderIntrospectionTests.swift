import Foundation
import GatewayConfig
import GatewayTestSupport
import Testing

/// `[[auth.oauth.introspection]]`: a valid entry parses with its defaults and renders without
/// its secret; each mistake is a problem naming its key and line.
@Suite struct ConfigurationLoaderIntrospectionTests {
    private static let upstream = "[upstream]\nurl = \"http://127.0.0.1:9000\"\n"

    private func problems(_ text: String) -> [ConfigurationError.Problem] {
        configurationProblems(Self.upstream + text, file: "g.conf")
    }

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
        #expect(
            problem.description.hasPrefix("g.conf:\(line + 2): \(key): "),
            "\(problem.description)",
            sourceLocation: sourceLocation
        )
        #expect(problem.message.contains(containing), "\(problem.message)", sourceLocation: sourceLocation)
    }

    @Test func validEntriesParseWithDefaults() throws {
        let secret = try temporaryFile("top-secret-value\n", prefix: "dbgw-introspection")
        let text =
            Self.upstream + """
                [[auth.oauth.introspection]]
                endpoint = "https://login.example.com/oauth2/introspect"
                client_id = "dbaudit-gateway"
                client_secret_file = "\(secret)"

                [[auth.oauth.introspection]]
                endpoint = "http://127.0.0.1:8081/introspect"
                client_id = "gw"
                client_secret_file = "\(secret)"
                timeout = "2s"
                cache_max = "1m"
                negative_ttl = "0s"
                """
        let configuration = try ConfigurationLoader.parse(text: text, file: "g.conf")
        #expect(configuration.introspection.count == 2)
        let first = try #require(configuration.introspection.first)
        #expect(first.endpoint == "https://login.example.com/oauth2/introspect" && first.clientID == "dbaudit-gateway")
        #expect(first.clientSecret.value == "top-secret-value")
        #expect(
            first.timeout == .milliseconds(500) && first.cacheMax == .seconds(300) && first.negativeTTL == .seconds(10)
        )
        let second = configuration.introspection[1]
        #expect(second.timeout == .seconds(2) && second.cacheMax == .seconds(60) && second.negativeTTL == .zero)
        let rendered = configuration.renderedTOML()
        #expect(rendered.contains("[[auth.oauth.introspection]]"))
        #expect(rendered.contains("cache_max = \"5m\"") || rendered.contains("cache_max = \"300s\""), "\(rendered)")
        #expect(!rendered.contains("top-secret-value"))
        // The rendering is itself a valid configuration (check-config output can be reused).
        #expect(
            configurationProblems(
                rendered.replacingOccurrences(
                    of: "# client secret",
                    with: "client_secret_file = \"\(secret)\"\n# client secret"
                )
            ).isEmpty
        )
    }

    @Test func endpointMustBeHTTPSOrLoopbackHTTP() {
        for endpoint in [
            "http://login.example.com/introspect", "ftp://127.0.0.1/x", "https://user:pw@login.example.com/i",
            "https://login.example.com/i#frag", "not a url",
        ] {
            expectProblem(
                "[[auth.oauth.introspection]]\nendpoint = \"\(endpoint)\"\nclient_id = \"gw\"\nclient_secret_env = \"HOME\"\n",
                key: "auth.oauth.introspection[0].endpoint",
                line: 2,
                containing: "https://"
            )
        }
    }

    @Test func requiredKeysAndBounds() {
        expectProblem(
            "[[auth.oauth.introspection]]\nclient_id = \"gw\"\n",
            key: "auth.oauth.introspection[0].endpoint",
            line: 1,
            containing: "is required"
        )
        expectProblem(
            "[[auth.oauth.introspection]]\nendpoint = \"https://a.example/i\"\nclient_secret_env = \"HOME\"\n",
            key: "auth.oauth.introspection[0].client_id",
            line: 1,
            containing: "is required"
        )
        expectProblem(
            "[[auth.oauth.introspection]]\nendpoint = \"https://a.example/i\"\nclient_id = \"gw\"\n",
            key: "auth.oauth.introspection[0].client_secret_file",
            line: 1,
            containing: "client secret"
        )
        expectProblem(
            "[[auth.oauth.introspection]]\nendpoint = \"https://a.example/i\"\nclient_id = \"gw\"\nclient_secret_env = \"DBGW_SURELY_UNSET_VARIABLE\"\n",
            key: "auth.oauth.introspection[0].client_secret_env",
            line: 4,
            containing: "not set"
        )
        expectProblem(
            "[[auth.oauth.introspection]]\nendpoint = \"https://a.example/i\"\nclient_id = \"gw\"\nclient_secret_env = \"HOME\"\ncache_max = \"2d\"\n",
            key: "auth.oauth.introspection[0].cache_max",
            line: 5,
            containing: "between"
        )
        expectProblem(
            "[[auth.oauth.introspection]]\nendpoint = \"https://a.example/i\"\nclient_id = \"gw\"\nclient_secret_env = \"HOME\"\ntimeout = \"5m\"\n",
            key: "auth.oauth.introspection[0].timeout",
            line: 5,
            containing: "between"
        )
        expectProblem(
            "[[auth.oauth.introspection]]\nendpoint = \"https://a.example/i\"\nclient_id = \"gw\"\nclient_secret_env = \"HOME\"\nca_file = \"/nonexistent/ca.pem\"\n",
            key: "auth.oauth.introspection[0].ca_file",
            line: 5,
            containing: "cannot be read"
        )
        expectProblem(
            "[[auth.oauth.introspection]]\nendpoint = \"https://a.example/i\"\nclient_id = \"gw\"\nclient_secret_env = \"HOME\"\nsecret = \"x\"\n",
            key: "auth.oauth.introspection[0].secret",
            line: 5,
            containing: "unknown key"
        )
        expectProblem(
            "[[auth.oauth.introspection]]\nendpoint = \"https://a.example/i\"\nclient_id = \"gw\"\nclient_secret_env = \"HOME\"\n"
                + "[[auth.oauth.introspection]]\nendpoint = \"https://a.example/i\"\nclient_id = \"gw\"\nclient_secret_env = \"HOME\"\n",
            key: "auth.oauth.introspection[1].endpoint",
            line: 6,
            containing: "twice"
        )
    }
}
