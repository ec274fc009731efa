import GatewayConfig
import GatewayCore
import GatewayRedis
import GatewayRedisTestSupport
import Testing

/// `RedisReadinessProbe` (what `run` waits for before reporting ready) against a real
/// redis-server, and against a port nothing listens on.
@Suite(.timeLimit(.minutes(1)))
struct RedisReadinessProbeTests {
    @Test("a running server answers PING")
    func answers() async throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        try await withEventLoop { loop async throws in
            let answer = await RedisReadinessProbe.answersPing(redisSettings(server), on: loop, clock: .system)
            #expect(answer == .node(server.endpoint))
            #expect(answer?.description == "Redis \(server.endpoint)")
        }
    }

    @Test("a cluster: the primaries of the slot map answered, not the seed as configured")
    func clusterAnswers() async throws {
        let server = try await startSingleNodeCluster(arguments: ["--cluster-announce-ip", "127.0.0.1"])
        defer { server.stop() }
        // The seed is named by another address of the same node: the answer names the node
        // the cluster announces.
        var settings = redisClusterSettings(server)
        settings.cluster = RedisSettings.Cluster(nodes: [.tcp(host: "localhost", port: server.port)])
        settings.endpoint = .tcp(host: "localhost", port: server.port)
        try await withEventLoop { loop async throws in
            let answer = await RedisReadinessProbe.answersPing(settings, on: loop, clock: .system)
            #expect(answer == .cluster(primaries: [server.endpoint]))
            #expect(answer?.description == "Redis \(server.endpoint) (cluster primaries: \(server.endpoint))")
        }
    }

    @Test("nothing listening: no answer once the connect timeout has passed")
    func noAnswer() async throws {
        var settings = RedisSettings(endpoint: .tcp(host: "127.0.0.1", port: try freeLoopbackPort()))
        settings.connectTimeout = .milliseconds(300)
        try await withEventLoop { loop async throws in
            #expect(await RedisReadinessProbe.answersPing(settings, on: loop, clock: .system) == nil)
        }
    }
}
