import Foundation
import Testing

@testable import GatewayConfig

private let file = "/etc/dbaudit/gateway.conf"

private let upstream = """
    [upstream]
    url = "http://127.0.0.1:9000"

    """

/// The single problem of `text`, with its file, line and key, as an operator reads it.
private func onlyProblem(
    _ text: String,
    key: String,
    line: Int,
    messageContains fragment: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let found: [ConfigurationError.Problem]
    do {
        let configuration = try ConfigurationLoader.parse(text: text, file: file)
        Issue.record("expected a ConfigurationError, got \(configuration)", sourceLocation: sourceLocation)
        return
    } catch {
        found = error.problems
    }
    #expect(found.count == 1, "\(found)", sourceLocation: sourceLocation)
    guard let problem = found.first else { return }
    #expect(problem.key == key, sourceLocation: sourceLocation)
    #expect(problem.line == line, "\(problem)", sourceLocation: sourceLocation)
    #expect(problem.message.contains(fragment), "\(problem.message)", sourceLocation: sourceLocation)
    #expect(problem.description.hasPrefix("\(file):\(line): \(key): "), "\(problem)", sourceLocation: sourceLocation)
}

@Suite struct ConfigurationLoaderRateLimitTests {
    static let valid =
        upstream + """
            [server]
            trusted_proxies = ["127.0.0.1", "10.0.0.0/8", "::1"]

            [[rate_limits]]
            name = "default"
            rate = 600
            per = "minute"
            burst = 100

            [[rate_limits]]
            name = "login.per-address_1"
            rate = 5
            per = "hour"
            on_store_unavailable = "deny"

            [[routes]]
            method = "GET"
            path = "/v1/logs/**"
            scopes = ["read:logs"]
            rate_limit = "default"

            [[routes]]
            method = "GET"
            path = "/v1/alerts/**"
            scopes = ["read:alerts"]
            """

    @Test func policiesRoutesAndTrustedProxiesParse() throws {
        let configuration = try ConfigurationLoader.parse(text: Self.valid, file: file)
        #expect(
            configuration.rateLimits == [
                RateLimitPolicy(name: "default", rate: 600, per: .minute, burst: 100, onStoreUnavailable: .local),
                RateLimitPolicy(name: "login.per-address_1", rate: 5, per: .hour, burst: 5, onStoreUnavailable: .deny),
            ]
        )
        #expect(configuration.rateLimitPolicy(named: "default")?.burst == 100)
        #expect(configuration.rateLimitPolicy(named: "nope") == nil)
        #expect(configuration.routes.map(\.rateLimit) == ["default", nil])
        #expect(configuration.server.trustedProxies.contains("10.1.2.3"))
        #expect(configuration.server.trustedProxies.networks.count == 3)
    }

    @Test func defaultsAreNoPoliciesAndNoTrustedProxies() throws {
        let configuration = try ConfigurationLoader.parse(text: upstream, file: file)
        #expect(configuration.rateLimits.isEmpty)
        #expect(configuration.server.trustedProxies.isEmpty)
    }

    @Test func renderedConfigurationParsesBackToTheSame() throws {
        let configuration = try ConfigurationLoader.parse(text: Self.valid, file: file)
        let rendered = configuration.renderedTOML()
        #expect(rendered.contains(#"trusted_proxies = ["127.0.0.1", "10.0.0.0/8", "::1"]"#))
        #expect(
            rendered.contains(
                "[[rate_limits]]\nname = \"login.per-address_1\"\nrate = 5\nper = \"hour\"\nburst = 5\non_store_unavailable = \"deny\"\n"
            )
        )
        #expect(rendered.contains("rate_limit = \"default\""))
        #expect(try ConfigurationLoader.parse(text: rendered, file: file) == configuration)
    }

    @Test func theExampleFileParsesWithPoliciesOnEveryRoute() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        var text = try String(contentsOf: root.appendingPathComponent("gateway.conf.example"), encoding: .utf8)
        // The example reads its pepper from /etc/dbaudit-gateway; a unit test must not depend on it.
        text = text.replacingOccurrences(of: "\npepper_file = \"/etc/dbaudit-gateway/api-key-pepper\"", with: "")
        text = text.replacingOccurrences(of: "[redis]\n", with: "[unused_redis]\n")
        text =
            text.components(separatedBy: "[unused_redis]")[0] + "[cache]" + text.components(separatedBy: "[cache]")[1]
        let configuration = try ConfigurationLoader.parse(text: text, file: "gateway.conf.example")
        #expect(configuration.rateLimits.map(\.name) == ["default", "reports"])
        #expect(configuration.routes.allSatisfy { $0.rateLimit != nil })
    }

    // MARK: problems, each with file:line: key:

    @Test func missingName() {
        onlyProblem(
            upstream + "[[rate_limits]]\nrate = 1\nper = \"second\"\n",
            key: "rate_limits[0].name",
            line: 3,
            messageContains: "is required"
        )
    }

    @Test func badNames() {
        for bad in ["", "has space", "a:b", String(repeating: "x", count: 65), "é"] {
            onlyProblem(
                upstream + "[[rate_limits]]\nname = \"\(bad)\"\nrate = 1\nper = \"second\"\n",
                key: "rate_limits[0].name",
                line: 4,
                messageContains: "1-64 characters"
            )
        }
        onlyProblem(
            upstream + "[[rate_limits]]\nname = 7\nrate = 1\nper = \"second\"\n",
            key: "rate_limits[0].name",
            line: 4,
            messageContains: "must be a string"
        )
    }

    @Test func duplicateName() {
        let text =
            upstream + """
                [[rate_limits]]
                name = "a"
                rate = 1
                per = "second"

                [[rate_limits]]
                name = "a"
                rate = 2
                per = "second"
                """
        onlyProblem(text, key: "rate_limits[1].name", line: 9, messageContains: "already defined")
    }

    @Test func badRates() {
        for (value, message) in [
            ("0", "between 1 and 1000000"), ("-5", "between 1 and 1000000"), ("1000001", "between 1 and 1000000"),
            ("1.5", "must be an integer"), ("\"10\"", "must be an integer"),
        ] {
            onlyProblem(
                upstream + "[[rate_limits]]\nname = \"p\"\nrate = \(value)\nper = \"second\"\n",
                key: "rate_limits[0].rate",
                line: 5,
                messageContains: message
            )
        }
        onlyProblem(
            upstream + "[[rate_limits]]\nname = \"p\"\nper = \"second\"\n",
            key: "rate_limits[0].rate",
            line: 3,
            messageContains: "is required"
        )
    }

    @Test func badPeriods() {
        for value in ["\"day\"", "\"Second\"", "\"1s\"", "60"] {
            onlyProblem(
                upstream + "[[rate_limits]]\nname = \"p\"\nrate = 1\nper = \(value)\n",
                key: "rate_limits[0].per",
                line: 6,
                messageContains: "must be"
            )
        }
        onlyProblem(
            upstream + "[[rate_limits]]\nname = \"p\"\nrate = 1\nper = \"day\"\n",
            key: "rate_limits[0].per",
            line: 6,
            messageContains: "\"second\", \"minute\" or \"hour\""
        )
        onlyProblem(
            upstream + "[[rate_limits]]\nname = \"p\"\nrate = 1\n",
            key: "rate_limits[0].per",
            line: 3,
            messageContains: "is required"
        )
    }

    @Test func badBurst() {
        onlyProblem(
            upstream + "[[rate_limits]]\nname = \"p\"\nrate = 1\nper = \"second\"\nburst = 0\n",
            key: "rate_limits[0].burst",
            line: 7,
            messageContains: "between 1 and 1000000"
        )
        onlyProblem(
            upstream + "[[rate_limits]]\nname = \"p\"\nrate = 1\nper = \"second\"\nburst = \"lots\"\n",
            key: "rate_limits[0].burst",
            line: 7,
            messageContains: "must be an integer"
        )
    }

    @Test func badStoreUnavailablePolicy() {
        onlyProblem(
            upstream + "[[rate_limits]]\nname = \"p\"\nrate = 1\nper = \"second\"\non_store_unavailable = \"allow\"\n",
            key: "rate_limits[0].on_store_unavailable",
            line: 7,
            messageContains: "\"local\" or \"deny\""
        )
    }

    @Test func unknownKeyInAPolicy() {
        onlyProblem(
            upstream + "[[rate_limits]]\nname = \"p\"\nrate = 1\nper = \"second\"\nwindow = \"1m\"\n",
            key: "rate_limits[0].window",
            line: 7,
            messageContains: "unknown key"
        )
    }

    @Test func rateLimitsMustBeAnArrayOfTables() {
        onlyProblem(
            upstream + "[rate_limits]\nname = \"p\"\n",
            key: "rate_limits",
            line: 3,
            messageContains: "array of tables"
        )
    }

    @Test func routeNamingAnUndefinedPolicy() {
        let text =
            upstream + """
                [[rate_limits]]
                name = "default"
                rate = 1
                per = "second"

                [[routes]]
                method = "GET"
                path = "/v1/logs/**"
                scopes = ["read:logs"]
                rate_limit = "defualt"
                """
        onlyProblem(
            text,
            key: "routes[0].rate_limit",
            line: 12,
            messageContains: "no [[rate_limits]] policy is named \"defualt\" (defined: default)"
        )
        onlyProblem(
            upstream + "[[routes]]\nmethod = \"GET\"\npath = \"/x\"\nscopes = [\"read:logs\"]\nrate_limit = \"p\"\n",
            key: "routes[0].rate_limit",
            line: 7,
            messageContains: "none defined"
        )
    }

    @Test func badTrustedProxies() {
        onlyProblem(
            upstream + "[server]\ntrusted_proxies = [\"10.0.0.1/8\"]\n",
            key: "server.trusted_proxies",
            line: 4,
            messageContains: "did you mean \"10.0.0.0/8\""
        )
        onlyProblem(
            upstream + "[server]\ntrusted_proxies = [\"proxy.internal\"]\n",
            key: "server.trusted_proxies",
            line: 4,
            messageContains: "not an IPv4 or IPv6 address"
        )
        onlyProblem(
            upstream + "[server]\ntrusted_proxies = \"10.0.0.0/8\"\n",
            key: "server.trusted_proxies",
            line: 4,
            messageContains: "array of strings"
        )
    }
}
