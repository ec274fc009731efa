import Foundation
import GatewayConfig
import GatewayTestSupport
import Testing

/// `[redis]`, `[cache]`, `[auth.api_keys]`, `[[routes]]`, `[admin]` and the access-log
/// sampling key: valid values parse, each bad value is a problem naming its key and line,
/// and secrets never appear in messages or in the rendered configuration.
@Suite struct ConfigurationLoaderAuthSectionsTests {
    private static let upstream = "[upstream]\nurl = \"http://127.0.0.1:9000\"\n"

    private func secretFile(_ contents: String) throws -> String {
        try temporaryFile(contents, prefix: "dbgw-secret")
    }

    @Test func keyManagementBoundsDefaultAndParse() throws {
        let defaults = try ConfigurationLoader.parse(text: Self.upstream, file: "g.conf")
        #expect(defaults.apiKeys.maxKeysPerOwner == 100)
        #expect(defaults.apiKeys.managementRateLimit == nil)
        let text =
            Self.upstream + """
                [auth.api_keys]
                max_keys_per_owner = 7
                management_rate_limit = "keys"

                [[rate_limits]]
                name = "keys"
                rate = 5
                per = "minute"
                """
        let configuration = try ConfigurationLoader.parse(text: text, file: "g.conf")
        #expect(configuration.apiKeys.maxKeysPerOwner == 7)
        #expect(configuration.apiKeys.managementRateLimit == "keys")
        let rendered = configuration.renderedTOML()
        #expect(rendered.contains("max_keys_per_owner = 7"))
        #expect(rendered.contains("management_rate_limit = \"keys\""))
    }

    @Test(arguments: [
        "max_keys_per_owner = 0", "max_keys_per_owner = 100001", "max_keys_per_owner = \"10\"",
        "management_rate_limit = \"nope\"",
    ])
    func badKeyManagementSettingsNameTheirKeyAndLine(line: String) {
        let found = configurationProblems(Self.upstream + "\n[auth.api_keys]\n" + line + "\n", file: "g.conf")
        let key = "auth.api_keys." + line.prefix(while: { $0 != " " })
        let problem = found.first { $0.key == key }
        #expect(problem?.line == 5, "\(found)")
        #expect(problem.map { "\($0)".hasPrefix("g.conf:5: \(key): ") } == true, "\(found)")
    }

    @Test func failedAuthenticationBudgetAndNegativeCacheDefaultAndParse() throws {
        let defaults = try ConfigurationLoader.parse(text: Self.upstream, file: "g.conf")
        #expect(defaults.apiKeys.failuresPerAddress == 100)
        #expect(defaults.apiKeys.failureWindow == .seconds(60))
        #expect(
            defaults.apiKeys.failurePolicy
                == RateLimitPolicy(name: "auth-failures-address", rate: 100, per: .minute, burst: 100)
        )
        #expect(defaults.cache.negativeMaxEntries == 10_000)
        let text =
            Self.upstream + """
                [cache]
                negative_max_entries = 500

                [auth.api_keys]
                failures_per_address = 30
                failure_window = "5m"
                """
        let configuration = try ConfigurationLoader.parse(text: text, file: "g.conf")
        #expect(configuration.cache.negativeMaxEntries == 500)
        // 30 per 5 minutes: a bucket of 30 refilling 360 per hour.
        #expect(
            configuration.apiKeys.failurePolicy
                == RateLimitPolicy(name: "auth-failures-address", rate: 360, per: .hour, burst: 30)
        )
        let rendered = configuration.renderedTOML()
        #expect(rendered.contains("negative_max_entries = 500"))
        #expect(rendered.contains("failures_per_address = 30"))
        #expect(rendered.contains("failure_window = \"5m\""))
        let off = try ConfigurationLoader.parse(
            text: Self.upstream + "[auth.api_keys]\nfailures_per_address = 0\n",
            file: "g.conf"
        )
        #expect(off.apiKeys.failurePolicy == nil)
    }

    @Test(arguments: [
        "failures_per_address = -1", "failures_per_address = 100001", "failure_window = \"0s\"",
        "failure_window = \"2h\"",
    ])
    func badFailureBudgetSettingsNameTheirKeyAndLine(line: String) {
        let found = configurationProblems(Self.upstream + "\n[auth.api_keys]\n" + line + "\n", file: "g.conf")
        let key = "auth.api_keys." + line.prefix(while: { $0 != " " })
        let problem = found.first { $0.key == key }
        #expect(problem?.line == 5, "\(found)")
    }

    @Test func aFailureBudgetTooLargeToCountIsRefused() {
        let found = configurationProblems(
            Self.upstream + "\n[auth.api_keys]\nfailures_per_address = 100000\nfailure_window = \"2s\"\n",
            file: "g.conf"
        )
        #expect(found.contains { $0.key == "auth.api_keys.failures_per_address" }, "\(found)")
        #expect(!configurationProblems(Self.upstream + "\n[cache]\nnegative_max_entries = 0\n", file: "g.conf").isEmpty)
    }

    @Test func fullAuthConfigurationParses() throws {
        let pepper = try secretFile(String(repeating: "p", count: 40) + "\n")
        let password = try secretFile("redis-secret\n")
        let token = try secretFile("admin-token-0123456789\n")
        let text =
            Self.upstream + """
                [redis]
                url = "redis://10.0.0.5:6380"
                username = "gw"
                password_file = "\(password)"
                database = 2
                connect_timeout = "250ms"
                command_timeout = "100ms"
                key_prefix = "gw1:"

                [cache]
                positive_ttl = "10s"
                negative_ttl = "2s"
                stale_grace = "1m"
                max_entries = 5000

                [auth.api_keys]
                pepper_file = "\(pepper)"
                forward_authorization = true

                [admin]
                listen = "127.0.0.1:9911"
                token_file = "\(token)"

                [logging]
                access_log_sample_rate = 0.25

                [[routes]]
                method = "GET"
                path = "/v1/databases/*"
                scopes = ["read:databases"]

                [[routes]]
                path = "/status"
                public = true
                """
        let configuration = try ConfigurationLoader.parse(text: text, file: "g.conf")
        let redis = try #require(configuration.redis)
        #expect(redis.endpoint == .tcp(host: "10.0.0.5", port: 6380))
        #expect(redis.username == "gw" && redis.password?.value == "redis-secret" && redis.database == 2)
        #expect(redis.connectTimeout == .milliseconds(250) && redis.commandTimeout == .milliseconds(100))
        #expect(redis.keyPrefix == "gw1:")
        #expect(configuration.cache.positiveTTL == .seconds(10) && configuration.cache.negativeTTL == .seconds(2))
        #expect(configuration.cache.staleGrace == .seconds(60) && configuration.cache.maxEntries == 5000)
        #expect(configuration.apiKeys.pepper?.value == String(repeating: "p", count: 40))
        #expect(configuration.apiKeys.forwardAuthorization)
        #expect(configuration.admin?.listen == ListenAddress(host: "127.0.0.1", port: 9911))
        #expect(configuration.admin?.token?.value == "admin-token-0123456789")
        #expect(configuration.logging.accessLogSampleRate == 0.25)
        #expect(
            configuration.routes == [
                RouteSettings(method: "GET", path: "/v1/databases/*", scopes: ["read:databases"]),
                RouteSettings(method: nil, path: "/status", scopes: [], isPublic: true),
            ]
        )
        // Secrets never reach the rendered configuration; the rest round-trips.
        let rendered = configuration.renderedTOML()
        #expect(!rendered.contains("redis-secret") && !rendered.contains("pppp") && !rendered.contains("admin-token"))
        #expect(rendered.contains("<redacted>"))
    }

    @Test func unixSocketURLAndEnvironmentSecret() throws {
        setenv("DBGW_TEST_PEPPER", String(repeating: "e", count: 33), 1)
        let text =
            Self.upstream + """
                [redis]
                url = "unix:///run/redis/redis.sock"
                [auth.api_keys]
                pepper_env = "DBGW_TEST_PEPPER"
                """
        let configuration = try ConfigurationLoader.parse(text: text, file: "g.conf")
        #expect(configuration.redis?.endpoint == .unix(path: "/run/redis/redis.sock"))
        #expect(configuration.apiKeys.pepper?.value.count == 33)
    }

    @Test(arguments: [
        ("[redis]\nurl = \"redis://:pw@h:6379\"\n", "redis.url"),
        ("[redis]\nurl = \"rediss://h\"\ntls = false\n", "redis.tls"),
        ("[redis]\nurl = \"redis://h/3\"\n", "redis.url"),
        ("[redis]\nurl = \"redis://h\"\ndatabase = 5000\n[auth.api_keys]\npepper_env = \"HOME\"\n", "redis.database"),
        ("[redis]\nurl = \"redis://h\"\n", "auth.api_keys.pepper_file"),
        ("[redis]\nurl = \"redis://h\"\npassword_env = \"DBGW_UNSET_VARIABLE_X\"\n", "redis.password_env"),
        ("[redis]\nurl = \"redis://h\"\npassword_file = \"/nonexistent/dbgw\"\n", "redis.password_file"),
        ("[cache]\npositive_ttl = \"forever\"\n", "cache.positive_ttl"),
        ("[cache]\nmax_entries = 0\n", "cache.max_entries"),
        ("[auth.api_keys]\npepper_env = \"DBGW_SHORT_PEPPER\"\n", "auth.api_keys.pepper_file"),
        ("[auth]\njwt = 1\n", "auth.jwt"),
        ("[[routes]]\nmethod = \"FETCH\"\npath = \"/x\"\nscopes = [\"admin\"]\n", "routes[0].method"),
        ("[[routes]]\npath = \"x\"\nscopes = [\"admin\"]\n", "routes[0].path"),
        ("[[routes]]\npath = \"/a/**/b\"\nscopes = [\"admin\"]\n", "routes[0].path"),
        ("[[routes]]\npath = \"/a/%2f\"\nscopes = [\"admin\"]\n", "routes[0].path"),
        ("[[routes]]\npath = \"/a\"\nscopes = [\"root\"]\n", "routes[0].scopes"),
        ("[[routes]]\npath = \"/a\"\n", "routes[0].scopes"),
        ("[[routes]]\npath = \"/a\"\npublic = true\nscopes = [\"admin\"]\n", "routes[0].public"),
        ("[[routes]]\nscopes = [\"admin\"]\n", "routes[0].path"),
        ("[admin]\nlisten = \"nowhere\"\n", "admin.listen"),
        ("[admin]\ntoken_env = \"DBGW_SHORT_PEPPER\"\n", "admin.token_file"),
        ("[logging]\naccess_log_sample_rate = 1.5\n", "logging.access_log_sample_rate"),
        ("[server]\nunmatched_routes = \"allow\"\n", "server.unmatched_routes"),
    ])
    func badValueIsAProblemNamingItsKey(text: String, key: String) {
        setenv("DBGW_SHORT_PEPPER", "short", 1)
        let found = configurationProblems(Self.upstream + text, file: "g.conf")
        #expect(found.contains { $0.key == key }, "\(found)")
        #expect(found.allSatisfy { $0.file == "g.conf" })
        #expect(!found.description.contains("short"), "a secret leaked into a problem message")
    }

    @Test func routeProblemCarriesTheLineOfItsKey() {
        let found = configurationProblems(
            Self.upstream
                + "\n[[routes]]\npath = \"/ok\"\nscopes = [\"admin\"]\n\n[[routes]]\npath = \"/a\"\nscopes = [\"root\"]\n",
            file: "g.conf"
        )
        let problem = found.first { $0.key == "routes[1].scopes" }
        #expect(problem?.line == 10, "\(found)")  // the second table's `scopes =` line
    }

    /// The admin listener answers readiness and metrics: reachable beyond this host only
    /// when the operator says so (`allow_remote = true`) and a token guards it.
    @Test(arguments: [
        ("listen = \"0.0.0.0:9901\"\n", "admin.listen"),
        ("listen = \"[::]:9901\"\n", "admin.listen"),
        ("listen = \"192.0.2.7:9901\"\n", "admin.listen"),
        ("listen = \"[::ffff:192.0.2.7]:9901\"\n", "admin.listen"),
        ("listen = \"[::2]:9901\"\n", "admin.listen"),
        ("listen = \"0.0.0.0:9901\"\ntoken_env = \"DBGW_ADMIN_TOKEN\"\n", "admin.listen"),
        ("listen = \"0.0.0.0:9901\"\nallow_remote = true\n", "admin.allow_remote"),
        ("listen = \"[::]:9901\"\nallow_remote = true\n", "admin.allow_remote"),
    ])
    func remoteAdminListenerNeedsAllowRemoteAndAToken(text: String, key: String) {
        setenv("DBGW_ADMIN_TOKEN", "admin-token-0123456789", 1)
        let found = configurationProblems(Self.upstream + "[admin]\n" + text, file: "g.conf")
        #expect(found.contains { $0.key == key }, "\(found)")
        #expect(!found.description.contains("admin-token-0123456789"), "a secret leaked into a problem message")
    }

    @Test(arguments: [
        "listen = \"127.0.0.1:9901\"\n",
        "listen = \"127.0.0.2:9901\"\n",
        "listen = \"[::1]:9901\"\n",
        "listen = \"[::ffff:127.0.0.1]:9901\"\n",
        "listen = \"localhost:9901\"\n",
        "listen = \"0.0.0.0:9901\"\nallow_remote = true\ntoken_env = \"DBGW_ADMIN_TOKEN\"\n",
        "listen = \"[::]:9901\"\nallow_remote = true\ntoken_env = \"DBGW_ADMIN_TOKEN\"\n",
    ])
    func loopbackOrGuardedRemoteAdminListenerIsAccepted(text: String) throws {
        setenv("DBGW_ADMIN_TOKEN", "admin-token-0123456789", 1)
        let configuration = try ConfigurationLoader.parse(text: Self.upstream + "[admin]\n" + text, file: "g.conf")
        #expect(configuration.admin != nil)
    }
}
