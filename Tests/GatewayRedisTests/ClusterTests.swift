import GatewayConfig
import GatewayRedis
import Testing

private func bulk(_ text: String) -> RESPValue { .bulkString(Array(text.utf8)) }
private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

extension RESPValue {
    /// The same reply with every `ip` field emptied.
    fileprivate func replacingIP() -> RESPValue {
        guard case .array(let items) = self else { return self }
        var out: [RESPValue] = []
        var index = 0
        while index < items.count {
            if items[index] == .bulkString(Array("ip".utf8)), index + 1 < items.count {
                out += [items[index], .bulkString([])]
                index += 2
            } else {
                out.append(items[index].replacingIP())
                index += 1
            }
        }
        return .array(out)
    }
}

/// Redis Cluster on the client side: CRC16 and hash tags as the cluster specification
/// defines them, the slot map read from `CLUSTER SHARDS`/`CLUSTER SLOTS`, `MOVED`/`ASK`
/// replies, which keys a command routes by, and the bounded redirect state machine.
@Suite struct ClusterTests {
    private let nodeA = RedisSettings.Endpoint.tcp(host: "127.0.0.1", port: 30001)
    private let nodeB = RedisSettings.Endpoint.tcp(host: "127.0.0.1", port: 30002)

    @Test func crc16Vectors() {
        // The specification's check value for CRC16/XMODEM.
        #expect(ClusterSlot.crc16(bytes("123456789")) == 0x31C3)
        #expect(ClusterSlot.crc16(bytes("")) == 0)
        // Slots `CLUSTER KEYSLOT` gives.
        #expect(ClusterSlot.of("foo") == 12182)
        #expect(ClusterSlot.of("bar") == 5061)
        #expect(ClusterSlot.of("123456789") == 0x31C3 & 0x3FFF)
    }

    @Test func hashTags() {
        // The specification's examples.
        #expect(ClusterSlot.of("{user1000}.following") == ClusterSlot.of("{user1000}.followers"))
        #expect(ClusterSlot.of("{user1000}.following") == ClusterSlot.of("user1000"))
        #expect(Array(ClusterSlot.hashedPart(of: bytes("foo{}{bar}"))) == bytes("foo{}{bar}"))
        #expect(Array(ClusterSlot.hashedPart(of: bytes("foo{{bar}}zap"))) == bytes("{bar"))
        #expect(Array(ClusterSlot.hashedPart(of: bytes("foo{bar}{zap}"))) == bytes("bar"))
        #expect(Array(ClusterSlot.hashedPart(of: bytes("foo{bar"))) == bytes("foo{bar"))
        #expect(ClusterSlot.of("dbgw:{gw}:apikey:abc") == ClusterSlot.of("dbgw:{gw}:apikey-id:x"))
        #expect(ClusterSlot.of("dbgw:apikey:abc") != ClusterSlot.of("dbgw:apikey-id:x"))
    }

    /// The stores' prefix, and the prefix under which API key records spread: only on a
    /// cluster, and not when `key_prefix` pins every key to a slot of the operator's choice.
    @Test func storeKeyPrefix() {
        var settings = RedisSettings(endpoint: self.nodeA)
        #expect(settings.storeKeyPrefix == "dbgw:")
        #expect(settings.spreadKeyPrefix == nil)
        settings.cluster = RedisSettings.Cluster(nodes: [self.nodeA])
        #expect(settings.storeKeyPrefix == "dbgw:{gw}:")
        #expect(settings.spreadKeyPrefix == "dbgw:")
        settings.keyPrefix = "app{tenant1}:"
        #expect(settings.storeKeyPrefix == "app{tenant1}:")
        #expect(settings.spreadKeyPrefix == nil)
        settings.keyPrefix = "app{}:"
        #expect(settings.storeKeyPrefix == "app{}:{gw}:")
        #expect(settings.spreadKeyPrefix == "app{}:")
    }

    private func node(
        _ port: Int,
        role: String,
        health: String = "online",
        endpoint: String = "127.0.0.1"
    )
        -> RESPValue
    {
        .array([
            bulk("id"), bulk("abc\(port)"), bulk("port"), .integer(Int64(port)), bulk("ip"), bulk("127.0.0.1"),
            bulk("endpoint"), bulk(endpoint), bulk("role"), bulk(role), bulk("replication-offset"), .integer(1),
            bulk("health"), bulk(health),
        ])
    }

    @Test func slotMapFromShards() throws {
        let reply = RESPValue.array([
            .array([
                bulk("slots"), .array([.integer(0), .integer(99), .integer(200), .integer(16383)]), bulk("nodes"),
                .array([self.node(30003, role: "replica"), self.node(30001, role: "master")]),
            ]),
            .array([
                bulk("slots"), .array([.integer(100), .integer(199)]), bulk("nodes"),
                .array([self.node(30002, role: "master", endpoint: "?")]),
            ]),
        ])
        let map = try ClusterSlotMap.fromShards(reply)
        #expect(map.node(forSlot: 0) == self.nodeA)
        #expect(map.node(forSlot: 99) == self.nodeA)
        #expect(map.node(forSlot: 100) == self.nodeB)
        #expect(map.node(forSlot: 199) == self.nodeB)
        #expect(map.node(forSlot: 16383) == self.nodeA)
        #expect(map.coveredSlots == 16384)
        #expect(map.nodes == [self.nodeA, self.nodeB])
        // A shard whose only primary is failing serves nothing (its slots wait for the next map).
        let failing = RESPValue.array([
            .array([
                bulk("slots"), .array([.integer(0), .integer(10)]), bulk("nodes"),
                .array([self.node(30001, role: "master", health: "fail")]),
            ])
        ])
        #expect(try ClusterSlotMap.fromShards(failing).coveredSlots == 0)
        // A node that never met another does not know its address: the one asked is meant.
        let alone = RESPValue.array([
            .array([
                bulk("slots"), .array([.integer(0), .integer(16383)]), bulk("nodes"),
                .array([self.node(30002, role: "master", endpoint: "")]),
            ])
        ])
        let unnamed = alone.replacingIP()
        #expect(throws: ClusterSlotMap.ParseError.self) { try ClusterSlotMap.fromShards(unnamed) }
        #expect(try ClusterSlotMap.fromShards(unnamed, answeredBy: self.nodeA).node(forSlot: 5) == self.nodeB)
        let slots = RESPValue.array([.array([.integer(0), .integer(16383), .array([bulk(""), .integer(30002)])])])
        #expect(try ClusterSlotMap.fromSlots(slots, answeredBy: self.nodeA).node(forSlot: 5) == self.nodeB)
    }

    @Test func slotMapFromSlots() throws {
        let reply = RESPValue.array([
            .array([.integer(0), .integer(8191), .array([bulk("127.0.0.1"), .integer(30001), bulk("id1")])]),
            .array([
                .integer(8192), .integer(16383), .array([bulk("127.0.0.1"), .integer(30002), bulk("id2")]),
                .array([bulk("127.0.0.1"), .integer(30004), bulk("id4")]),
            ]),
        ])
        var map = try ClusterSlotMap.fromSlots(reply)
        #expect(map.node(forSlot: 8191) == self.nodeA)
        #expect(map.node(forSlot: 8192) == self.nodeB)
        map.assign(slot: 8192, to: self.nodeA)
        #expect(map.node(forSlot: 8192) == self.nodeA)
        #expect(map.node(forSlot: 8193) == self.nodeB)
        #expect(map.node(forSlot: 16384) == nil)
    }

    @Test func hostileTopologyRepliesAreRefused() {
        let hostileSlots: [RESPValue] = [
            .simpleString("OK"), .error("ERR This instance has cluster support disabled"),
            .array([.array([.integer(0), .integer(16384), .array([bulk("127.0.0.1"), .integer(30001)])])]),
            .array([.array([.integer(10), .integer(5), .array([bulk("127.0.0.1"), .integer(30001)])])]),
            .array([.array([.integer(-1), .integer(5), .array([bulk("127.0.0.1"), .integer(30001)])])]),
            .array([.array([.integer(0), .integer(5), .array([bulk("127.0.0.1"), .integer(0)])])]),
            .array([.array([.integer(0), .integer(5), .array([bulk(""), .integer(30001)])])]),
            .array([.array([.integer(0), .integer(5), .array([bulk("bad host"), .integer(30001)])])]),
            .array([.array([.integer(0), .integer(5)])]),
        ]
        for reply in hostileSlots {
            #expect(throws: ClusterSlotMap.ParseError.self, "\(reply)") { try ClusterSlotMap.fromSlots(reply) }
        }
        let hostileShards: [RESPValue] = [
            .array([.array([bulk("slots"), .array([.integer(0)]), bulk("nodes"), .array([])])]),
            .array([.array([bulk("slots"), .array([.integer(0), .integer(5)])])]),
            .array([.array([bulk("slots")])]),
            .array([
                .array([
                    bulk("slots"), .array([.integer(0), .integer(99_999)]), bulk("nodes"),
                    .array([self.node(30001, role: "master")]),
                ])
            ]),
        ]
        for reply in hostileShards {
            #expect(throws: ClusterSlotMap.ParseError.self, "\(reply)") { try ClusterSlotMap.fromShards(reply) }
        }
    }

    @Test func redirectReplies() {
        #expect(
            ClusterRedirect(errorMessage: "MOVED 3999 127.0.0.1:30002")
                == ClusterRedirect(kind: .moved, slot: 3999, node: self.nodeB)
        )
        #expect(
            ClusterRedirect(errorMessage: "ASK 0 [::1]:6379")
                == ClusterRedirect(kind: .ask, slot: 0, node: .tcp(host: "::1", port: 6379))
        )
        #expect(
            ClusterRedirect(errorMessage: "MOVED 16383 redis-2.example:6380")
                == ClusterRedirect(kind: .moved, slot: 16383, node: .tcp(host: "redis-2.example", port: 6380))
        )
        for hostile in [
            "MOVED 16384 127.0.0.1:1", "MOVED -1 127.0.0.1:1", "MOVED 1 :6379", "MOVED 1 127.0.0.1",
            "MOVED 1 127.0.0.1:0", "MOVED 1 127.0.0.1:70000", "ASK 1  127.0.0.1:1", "ASK x 127.0.0.1:1",
            "ERR unknown command", "MOVED 1 127.0.0.1:1 extra", "moved 1 127.0.0.1:1", "TRYAGAIN Multiple keys",
        ] {
            #expect(ClusterRedirect(errorMessage: hostile) == nil, "\(hostile)")
        }
    }

    @Test func commandRoutes() {
        func route(_ words: String...) -> ClusterCommandKeys.Route { ClusterCommandKeys.route(of: words.map(bytes)) }
        #expect(route("GET", "foo") == .slot(12182))
        #expect(route("SET", "bar", "1") == .slot(5061))
        #expect(route("PING") == .anyNode)
        #expect(route("PUBLISH", "dbgw:events", "x") == .anyNode)
        // Sharded pub/sub: the channel decides the node, like a key.
        #expect(route("SPUBLISH", "dbgw:{gw}:events", "x") == .slot(ClusterSlot.of("gw")))
        #expect(route("SCRIPT", "LOAD", "return 1") == .anyNode)
        #expect(route("MGET", "{a}1", "{a}2") == .slot(ClusterSlot.of("a")))
        #expect(route("MGET", "foo", "bar") == .crossSlot)
        #expect(route("DEL", "foo") == .slot(12182))
        #expect(route("MSET", "{a}1", "x", "{a}2", "foo") == .slot(ClusterSlot.of("a")))
        #expect(route("EVALSHA", "abc", "2", "{t}x", "{t}y", "foo") == .slot(ClusterSlot.of("t")))
        #expect(route("EVALSHA", "abc", "2", "foo", "bar") == .crossSlot)
        #expect(route("EVAL", "return 1", "0") == .anyNode)
        #expect(route("SCAN", "0", "MATCH", "dbgw:{gw}:user:*", "COUNT", "100") == .slot(ClusterSlot.of("gw")))
        #expect(route("SCAN", "0", "MATCH", "dbgw:user:*") == .anyNode)
    }

    @Test func redirectStateMachine() {
        var machine = ClusterRedirectStateMachine()
        #expect(machine.failed(withMessage: "ERR wrong type") == .deliver)
        #expect(machine.failed(withMessage: "MOVED 5 127.0.0.1:30002") == .moved(slot: 5, node: self.nodeB))
        #expect(machine.failed(withMessage: "ASK 5 127.0.0.1:30001") == .ask(node: self.nodeA))
        #expect(machine.failed(withMessage: "TRYAGAIN Multiple keys request during rehashing of slot") == .tryAgain)
        #expect(machine.redirects == 3)
        #expect(machine.failed(withMessage: "MOVED 5 127.0.0.1:30001") == .moved(slot: 5, node: self.nodeA))
        #expect(machine.failed(withMessage: "MOVED 5 127.0.0.1:30002") == .moved(slot: 5, node: self.nodeB))
        // Two nodes sending a command back and forth: bounded.
        #expect(machine.failed(withMessage: "MOVED 5 127.0.0.1:30001") == .giveUp)
        #expect(machine.redirects == ClusterRedirectStateMachine.maximumRedirects)
    }
}
