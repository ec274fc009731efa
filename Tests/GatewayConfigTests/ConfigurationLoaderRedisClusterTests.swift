import Foundation
import GatewayConfig
import GatewayTestSupport
import Testing

/// `[redis] cluster_nodes`: valid seeds parse and render; each bad value (or a mix with
/// `url`, `sentinels` or a database other than 0) is a `file:line: key: message` problem.
@Suite struct ConfigurationLoaderRedisClusterTests {
    private static let head = """
        [upstream]
        url = "http://127.0.0.1:9000"
        [auth.api_keys]
        pepper_env = "DBGW_REDIS_TEST_PEPPER"

        """

    @Test func clusterNodesParseAndRender() throws {
        setenv("DBGW_REDIS_TEST_PEPPER", String(repeating: "p", count: 40), 1)
        let text = Self.head + "[redis]\ncluster_nodes = [\"10.0.0.21:7000\", \"10.0.0.22\", \"[::1]:7002\"]\n"
        let configuration = try ConfigurationLoader.parse(text: text, file: "g.conf")
        let redis = try #require(configuration.redis)
        let nodes: [RedisSettings.Endpoint] = [
            .tcp(host: "10.0.0.21", port: 7000), .tcp(host: "10.0.0.22", port: 6379), .tcp(host: "::1", port: 7002),
        ]
        #expect(redis.cluster?.nodes == nodes)
        #expect(redis.sentinel == nil)
        #expect(redis.endpoint == nodes[0])
        #expect(redis.storeKeyPrefix == "dbgw:{gw}:")
        let rendered = configuration.renderedTOML()
        #expect(rendered.contains("cluster_nodes = [\"10.0.0.21:7000\", \"10.0.0.22:6379\", \"[::1]:7002\"]"))
        #expect(!rendered.contains("url = \"redis"))
    }

    /// Whatever `key_prefix` holds, the stores' keys on a cluster share one slot (Redis reads
    /// the first `{` and the first `}` after it); the API key records keep a tag of their own.
    @Test(arguments: [
        ("dbgw:", "dbgw:{gw}:", "gw", "dbgw:" as String?),
        ("app{tenant1}:", "app{tenant1}:", "tenant1", nil),
        ("a{b:", "a{b:{gw}:", "b:{gw", "a{b:"),
        ("a}b:", "a}b:{gw}:", "gw", "a}b:"),
    ])
    func storeKeysShareOneSlotOnACluster(prefix: String, store: String, tag: String, spread: String?) throws {
        setenv("DBGW_REDIS_TEST_PEPPER", String(repeating: "p", count: 40), 1)
        let text = Self.head + "[redis]\ncluster_nodes = [\"h:1\"]\nkey_prefix = \"\(prefix)\"\n"
        let redis = try #require(try ConfigurationLoader.parse(text: text, file: "g.conf").redis)
        #expect(redis.storeKeyPrefix == store)
        #expect(RedisSettings.redisHashTag(of: redis.storeKeyPrefix + "apikeys") == Substring(tag))
        #expect(RedisSettings.redisHashTag(of: redis.storeKeyPrefix + "refresh:{x}") == Substring(tag))
        #expect(redis.spreadKeyPrefix == spread)
    }

    @Test(arguments: [
        ("cluster_nodes = []", "redis.cluster_nodes"),
        ("cluster_nodes = [\"h:0\"]", "redis.cluster_nodes"),
        ("cluster_nodes = [\"h:1\", \"h:1\"]", "redis.cluster_nodes"),
        ("cluster_nodes = [\"bad host:1\"]", "redis.cluster_nodes"),
        ("cluster_nodes = \"h:1\"", "redis.cluster_nodes"),
        ("url = \"redis://h\"\ncluster_nodes = [\"h:1\"]", "redis.cluster_nodes"),
        ("cluster_nodes = [\"h:1\"]\nsentinels = [\"h:2\"]\nmaster_name = \"m\"", "redis.cluster_nodes"),
        ("cluster_nodes = [\"h:1\"]\ndatabase = 2", "redis.database"),
        ("cluster_nodes = [\"h:1\"]\nkey_prefix = \"app{}:\"", "redis.key_prefix"),
        ("cluster_nodes = [\"h:1\"]\nkey_prefix = \"a{}b{c}:\"", "redis.key_prefix"),
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
