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
            #expect(await RedisReadinessProbe.answersPing(redisSettings(server), on: loop, clock: .system))
        }
    }

    @Test("nothing listening: no answer once the connect timeout has passed")
    func noAnswer() async throws {
        var settings = RedisSettings(endpoint: .tcp(host: "127.0.0.1", port: try freeLoopbackPort()))
        settings.connectTimeout = .milliseconds(300)
        try await withEventLoop { loop async throws in
            #expect(!(await RedisReadinessProbe.answersPing(settings, on: loop, clock: .system)))
        }
    }
}
