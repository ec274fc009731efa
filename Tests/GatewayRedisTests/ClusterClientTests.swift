import GatewayConfig
import GatewayRedis
import GatewayRedisTestSupport
import Testing

/// `RedisClient` in cluster mode against a real one-node cluster: commands routed by key,
/// keyless ones to any node, scripts loaded where their keys live, a cross-slot command
/// refused before it is sent.
@Suite struct ClusterClientTests {
    @Test func commandsScriptsAndCrossSlotRefusal() async throws {
        let server = try await startSingleNodeCluster()
        defer { server.stop() }
        try await withEventLoop { loop in
            let client = LoopClient(redisClusterSettings(server), on: loop)
            #expect(try await client.send(["SET", "{t}a", "1"]) == .simpleString("OK"))
            #expect(try await client.send(["GET", "{t}a"]) == .bulkString(Array("1".utf8)))
            #expect(try await client.send(["DBSIZE"]) == .integer(1))
            let slot = String(ClusterSlot.of("{t}a"))
            #expect(try await client.send(["CLUSTER", "COUNTKEYSINSLOT", slot]) == .integer(1))
            let reply = try await client.run {
                $0.evaluate(script: "return redis.call('GET', KEYS[1])", keys: ["{t}a"], arguments: [])
            }
            #expect(reply == .bulkString(Array("1".utf8)))
            await #expect(throws: RedisClientError.self) { try await client.send(["MGET", "foo", "bar"]) }
            await client.close()
        }
    }
}
