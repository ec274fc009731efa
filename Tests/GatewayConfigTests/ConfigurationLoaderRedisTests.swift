import Foundation
import GatewayConfig
import GatewayTestSupport
import Testing

/// `[redis]` in Sentinel mode and with TLS: valid settings parse and render without
/// secrets; each bad value is a `file:line: key: message` problem naming its key.
@Suite struct ConfigurationLoaderRedisTests {
    private static let head = """
        [upstream]
        url = "http://127.0.0.1:9000"
        [auth.api_keys]
        pepper_env = "DBGW_REDIS_TEST_PEPPER"

        """

    @Test func sentinelModeWithTLSParsesAndRendersWithoutSecrets() throws {
        setenv("DBGW_REDIS_TEST_PEPPER", String(repeating: "p", count: 40), 1)
        let password = try temporaryFile("sentinel-secret\n", prefix: "dbgw-sentinel")
        let ca = try temporaryFile("-----BEGIN CERTIFICATE-----\n", prefix: "dbgw-ca")
        let text =
            Self.head + """
                [redis]
                sentinels = ["10.0.0.11:26379", "10.0.0.12", "[::1]:26380"]
                master_name = "dbgw"
                sentinel_username = "watcher"
                sentinel_password_file = "\(password)"
                tls = true
                ca_file = "\(ca)"
                tls_server_name = "redis.internal"
                """
        let configuration = try ConfigurationLoader.parse(text: text, file: "g.conf")
        let redis = try #require(configuration.redis)
        let sentinel = try #require(redis.sentinel)
        #expect(
            sentinel.nodes == [
                .tcp(host: "10.0.0.11", port: 26379), .tcp(host: "10.0.0.12", port: 26379),
                .tcp(host: "::1", port: 26380),
            ]
        )
        #expect(sentinel.masterName == "dbgw" && sentinel.username == "watcher")
        #expect(sentinel.password?.value == "sentinel-secret")
        #expect(redis.tls?.caFile == ca && redis.tls?.serverName == "redis.internal")
        let rendered = configuration.renderedTOML()
        #expect(rendered.contains("sentinels = [\"10.0.0.11:26379\", \"10.0.0.12:26379\", \"[::1]:26380\"]"))
        #expect(rendered.contains("master_name = \"dbgw\"") && rendered.contains("tls = true"))
        #expect(!rendered.contains("sentinel-secret"))
    }

    @Test func redissURLTurnsTLSOn() throws {
        setenv("DBGW_REDIS_TEST_PEPPER", String(repeating: "p", count: 40), 1)
        let configuration = try ConfigurationLoader.parse(
            text: Self.head + "[redis]\nurl = \"rediss://cache.example.net:6380\"\n",
            file: "g.conf"
        )
        #expect(configuration.redis?.endpoint == .tcp(host: "cache.example.net", port: 6380))
        #expect(configuration.redis?.tls == RedisSettings.TLS())
        let plain = try ConfigurationLoader.parse(text: Self.head + "[redis]\nurl = \"redis://h\"\n", file: "g.conf")
        #expect(plain.redis?.tls == nil && plain.redis?.sentinel == nil)
    }

    @Test(arguments: [
        ("sentinels = []\nmaster_name = \"m\"", "redis.sentinels"),
        ("sentinels = [\"h:0\"]\nmaster_name = \"m\"", "redis.sentinels"),
        ("sentinels = [\"h:1\", \"h:1\"]\nmaster_name = \"m\"", "redis.sentinels"),
        ("sentinels = \"h:1\"\nmaster_name = \"m\"", "redis.sentinels"),
        ("sentinels = [\"h:1\"]", "redis.master_name"),
        ("sentinels = [\"h:1\"]\nmaster_name = \"two words\"", "redis.master_name"),
        ("url = \"redis://h\"\nsentinels = [\"h:1\"]\nmaster_name = \"m\"", "redis.url"),
        ("url = \"redis://h\"\nmaster_name = \"m\"", "redis.master_name"),
        ("url = \"redis://h\"\nsentinel_password_env = \"HOME\"", "redis.sentinel_password_env"),
        ("database = 1", "redis.url"),
        ("url = \"rediss://h\"\ntls = false", "redis.tls"),
        ("url = \"redis://h\"\nca_file = \"/etc/hostname\"", "redis.ca_file"),
        ("url = \"redis://h\"\ntls_server_name = \"h\"", "redis.tls_server_name"),
        ("url = \"redis://h\"\ntls = true\nca_file = \"/nonexistent/ca.pem\"", "redis.ca_file"),
        (
            "url = \"redis://h\"\ntls = true\nclient_certificate_file = \"/etc/hostname\"",
            "redis.client_certificate_file"
        ),
        ("url = \"redis://h\"\ntls = true\ntls_server_name = \"bad name\"", "redis.tls_server_name"),
        ("url = \"unix:///run/redis.sock\"\ntls = true", "redis.tls"),
        ("url = \"redis://h\"\ntls = \"yes\"", "redis.tls"),
    ])
    func badValueIsAProblemNamingItsKeyAndLine(lines: String, key: String) {
        setenv("DBGW_REDIS_TEST_PEPPER", String(repeating: "p", count: 40), 1)
        let text = Self.head + "[redis]\n" + lines + "\n"
        let found = configurationProblems(text, file: "g.conf")
        let problem = found.first { $0.key == key }
        #expect(problem != nil, "\(found)")
        guard let problem else { return }
        let keyName = String(key.dropFirst("redis.".count))
        let all = text.split(separator: "\n", omittingEmptySubsequences: false)
        let section = all.firstIndex(of: "[redis]") ?? 0
        let expectedLine = all[section...].firstIndex { $0.hasPrefix(keyName + " ") }.map { $0 + 1 }
        if let expectedLine {
            #expect(problem.line == expectedLine, "\(found)")
            #expect("\(problem)".hasPrefix("g.conf:\(expectedLine): \(key): "), "\(problem)")
        }
    }
}
