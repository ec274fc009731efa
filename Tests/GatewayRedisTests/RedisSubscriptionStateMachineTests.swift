import GatewayConfig
import GatewayRedis
import Testing

private func bulk(_ text: String) -> RESPValue { .bulkString(Array(text.utf8)) }

/// Pub/sub replies (plain and sharded, RESP2 as the client speaks it) parsed strictly, and
/// the subscription's state machine: plain `SUBSCRIBE` on one Redis, `SSUBSCRIBE` on the
/// primary serving the channel's slot on a cluster, `MOVED` followed within bounds, the
/// fallback to `SUBSCRIBE` where `SSUBSCRIBE` is unknown, and a new subscription when Redis
/// ends it (`sunsubscribe`: the slot moved).
@Suite struct RedisSubscriptionStateMachineTests {
    private let channel = "dbgw:{gw}:events"
    private let seed = RedisSettings.Endpoint.tcp(host: "127.0.0.1", port: 7000)
    private let owner = RedisSettings.Endpoint.tcp(host: "127.0.0.1", port: 7001)
    private let other = RedisSettings.Endpoint.tcp(host: "127.0.0.1", port: 7002)

    @Test func pubSubReplies() {
        let channel = Array(self.channel.utf8)
        let cases: [(RESPValue, PubSubReply)] = [
            (
                .array([bulk("message"), bulk(self.channel), bulk("revoke")]),
                .message(channel: channel, payload: Array("revoke".utf8), sharded: false)
            ),
            (
                .array([bulk("smessage"), bulk(self.channel), bulk("")]),
                .message(channel: channel, payload: [], sharded: true)
            ),
            (
                .array([bulk("subscribe"), bulk(self.channel), .integer(1)]),
                .subscribed(channel: channel, count: 1, sharded: false)
            ),
            (
                .array([bulk("ssubscribe"), bulk(self.channel), .integer(1)]),
                .subscribed(channel: channel, count: 1, sharded: true)
            ),
            (
                .array([bulk("unsubscribe"), bulk(self.channel), .integer(0)]),
                .unsubscribed(channel: channel, count: 0, sharded: false)
            ),
            (
                .array([bulk("sunsubscribe"), bulk(self.channel), .integer(0)]),
                .unsubscribed(channel: channel, count: 0, sharded: true)
            ),
        ]
        for (value, expected) in cases {
            #expect(PubSubReply.parse(value) == expected, "\(value)")
        }
        let hostile: [RESPValue] = [
            .array([bulk("pmessage"), bulk("dbgw:*"), bulk(self.channel), bulk("revoke")]),
            .array([bulk("smessage"), bulk(self.channel)]),
            .array([bulk("smessage"), bulk(self.channel), .integer(1)]),
            .array([bulk("ssubscribe"), bulk(self.channel), bulk("1")]),
            .array([bulk("ssubscribe"), bulk(self.channel), .integer(-1)]),
            .array([bulk("sunsubscribe"), .null, .integer(0)]),
            .array([bulk("smessage"), bulk(""), bulk("revoke")]),
            .array([bulk("SMESSAGE"), bulk(self.channel), bulk("revoke")]),
            .array([.simpleString("smessage"), bulk(self.channel), bulk("revoke")]),
            .array([bulk("smessage"), bulk(String(repeating: "c", count: 1025)), bulk("revoke")]),
            .array([bulk("smessage"), bulk(self.channel), bulk(String(repeating: "p", count: 4097))]),
            .array([bulk("smessage"), bulk(self.channel), bulk("revoke"), bulk("extra")]),
            .simpleString("OK"), .error("ERR unknown command 'ssubscribe'"), .null, .integer(1),
        ]
        for value in hostile {
            #expect(PubSubReply.parse(value) == nil, "\(value)")
        }
    }

    @Test func plainSubscriptionOnOneRedis() {
        var machine = RedisSubscriptionStateMachine(channel: "dbgw:events", cluster: false)
        #expect(machine.begin() == .openDefault)
        #expect(machine.opened(self.seed) == .send(["SUBSCRIBE", "dbgw:events"]))
        #expect(
            machine.replied(.array([bulk("subscribe"), bulk("dbgw:events"), .integer(1)]))
                == .subscribed(node: self.seed, sharded: false)
        )
        #expect(machine.pushed(.array([bulk("message"), bulk("dbgw:events"), bulk("m")])) == .deliver(Array("m".utf8)))
        // A sharded message or another channel's is not ours.
        #expect(
            machine.pushed(.array([bulk("smessage"), bulk("dbgw:events"), bulk("m")]))
                == .ignore(reason: "malformed pub/sub message")
        )
        #expect(
            machine.pushed(.array([bulk("message"), bulk("other"), bulk("m")]))
                == .ignore(reason: "malformed pub/sub message")
        )
        machine.connectionLost()
        #expect(machine.isIdle)
        #expect(machine.begin() == .openDefault)
    }

    @Test func shardedSubscriptionOnTheSlotOwner() throws {
        var machine = RedisSubscriptionStateMachine(channel: self.channel, cluster: true)
        #expect(machine.slot == ClusterSlot.of("gw"))
        #expect(machine.begin() == .openDefault)
        #expect(machine.opened(self.seed) == .readMap(self.seed))
        var map = ClusterSlotMap()
        map.assign(slot: machine.slot, to: self.owner)
        #expect(machine.mapRead(map) == .openNode(self.owner))
        #expect(machine.opened(self.owner) == .send(["SSUBSCRIBE", self.channel]))
        // A confirmation of the plain kind, or for another channel, is not one.
        var wrong = machine
        #expect(
            wrong.replied(.array([bulk("subscribe"), bulk(self.channel), .integer(1)]))
                == .fail(reason: "\(self.owner): unexpected reply to SSUBSCRIBE")
        )
        #expect(
            machine.replied(.array([bulk("ssubscribe"), bulk(self.channel), .integer(1)]))
                == .subscribed(node: self.owner, sharded: true)
        )
        #expect(machine.isSubscribed)
        #expect(
            machine.pushed(.array([bulk("smessage"), bulk(self.channel), bulk("revoke")]))
                == .deliver(Array("revoke".utf8))
        )
        #expect(
            machine.pushed(.array([bulk("message"), bulk(self.channel), bulk("revoke")]))
                == .ignore(reason: "malformed pub/sub message")
        )
        // The slot left the node: subscribe again at once, from the map.
        #expect(
            machine.pushed(.array([bulk("sunsubscribe"), bulk(self.channel), .integer(0)]))
                == .resubscribe(reason: "\(self.owner) ended the subscription (the channel's slot moved)")
        )
        #expect(machine.isIdle)
        #expect(machine.begin() == .openDefault)
        #expect(machine.opened(self.seed) == .readMap(self.seed))
    }

    @Test func theSeedOwningTheSlotIsUsedAsIsAndAnUnservedSlotFails() {
        var machine = RedisSubscriptionStateMachine(channel: self.channel, cluster: true)
        _ = machine.begin()
        _ = machine.opened(self.seed)
        var map = ClusterSlotMap()
        map.assign(slot: machine.slot, to: self.seed)
        #expect(machine.mapRead(map) == .send(["SSUBSCRIBE", self.channel]))

        var unserved = RedisSubscriptionStateMachine(channel: self.channel, cluster: true)
        _ = unserved.begin()
        _ = unserved.opened(self.seed)
        #expect(
            unserved.mapRead(ClusterSlotMap())
                == .fail(reason: "\(self.seed): no primary serves slot \(unserved.slot) of the revocation channel")
        )
        #expect(unserved.isIdle)
    }

    @Test func movedIsFollowedAtMostFiveTimes() {
        var machine = RedisSubscriptionStateMachine(channel: self.channel, cluster: true)
        _ = machine.begin()
        _ = machine.opened(self.seed)
        var map = ClusterSlotMap()
        map.assign(slot: machine.slot, to: self.owner)
        _ = machine.mapRead(map)
        _ = machine.opened(self.owner)
        let moved = "MOVED \(machine.slot) 127.0.0.1:7002"
        for _ in 0..<RedisSubscriptionStateMachine.maximumRedirects {
            #expect(machine.replied(.error(moved)) == .openNode(self.other))
            #expect(machine.opened(self.other) == .send(["SSUBSCRIBE", self.channel]))
        }
        #expect(
            machine.replied(.error(moved))
                == .fail(reason: "\(self.other): more than 5 redirections: \(moved)")
        )
        #expect(machine.isIdle)
    }

    @Test func unknownSSUBSCRIBEFallsBackToSUBSCRIBEOnTheSameNodeEachTime() {
        var machine = RedisSubscriptionStateMachine(channel: self.channel, cluster: true)
        for _ in 0..<2 {
            _ = machine.begin()
            _ = machine.opened(self.seed)
            var map = ClusterSlotMap()
            map.assign(slot: machine.slot, to: self.seed)
            #expect(machine.mapRead(map) == .send(["SSUBSCRIBE", self.channel]))
            #expect(
                machine.replied(
                    .error("ERR unknown command 'SSUBSCRIBE', with args beginning with: 'dbgw:{gw}:events' ")
                )
                    == .fallBack(node: self.seed, send: ["SUBSCRIBE", self.channel])
            )
            #expect(
                machine.replied(.array([bulk("subscribe"), bulk(self.channel), .integer(1)]))
                    == .subscribed(node: self.seed, sharded: false)
            )
            #expect(
                machine.pushed(.array([bulk("message"), bulk(self.channel), bulk("revoke")]))
                    == .deliver(Array("revoke".utf8))
            )
            machine.connectionLost()
        }
        // Any other error is a failure, not a fallback.
        _ = machine.begin()
        _ = machine.opened(self.seed)
        var map = ClusterSlotMap()
        map.assign(slot: machine.slot, to: self.seed)
        _ = machine.mapRead(map)
        #expect(
            machine.replied(.error("NOPERM this user has no permissions to access the 'dbgw:{gw}:events' channel"))
                == .fail(
                    reason: "\(self.seed): NOPERM this user has no permissions to access the 'dbgw:{gw}:events' channel"
                )
        )
        // Plain pub/sub never falls back or follows MOVED.
        var plain = RedisSubscriptionStateMachine(channel: "dbgw:events", cluster: false)
        _ = plain.begin()
        _ = plain.opened(self.seed)
        #expect(
            plain.replied(.error("ERR unknown command 'SUBSCRIBE'"))
                == .fail(reason: "\(self.seed): ERR unknown command 'SUBSCRIBE'")
        )
    }

    @Test func unknownCommandAnswers() {
        #expect(
            RedisSubscriptionStateMachine.isUnknownCommand(
                "ERR unknown command 'spublish', with args beginning with: 'x'"
            )
        )
        #expect(
            RedisSubscriptionStateMachine.isUnknownCommand(
                "ERR unknown command `SSUBSCRIBE`, with args beginning with: "
            )
        )
        #expect(RedisSubscriptionStateMachine.isUnknownCommand("ERR Unknown Redis command called from script"))
        #expect(
            !RedisSubscriptionStateMachine.isUnknownCommand(
                "NOPERM this user has no permissions to run the 'spublish' command"
            )
        )
        #expect(!RedisSubscriptionStateMachine.isUnknownCommand("ERR unknown subcommand 'SHARDS'"))
    }

    @Test func pushesBeforeTheConfirmationAreIgnored() {
        var machine = RedisSubscriptionStateMachine(channel: self.channel, cluster: true)
        _ = machine.begin()
        #expect(
            machine.pushed(.array([bulk("smessage"), bulk(self.channel), bulk("revoke")]))
                == .ignore(reason: "a pub/sub message before the subscription was confirmed")
        )
    }
}
