import GatewayConfig
import GatewayRedis
import Testing

private func bulk(_ text: String) -> RESPValue { .bulkString(Array(text.utf8)) }

/// What Sentinel and data nodes say (`SENTINEL get-master-addr-by-name`, `ROLE`,
/// `+switch-master`) parsed strictly, and the state machine that picks the node: discovery →
/// connected → switching, and back to discovery when the node stops being the primary.
@Suite struct SentinelTests {
    private let primary = RedisSettings.Endpoint.tcp(host: "10.0.0.5", port: 6379)
    private let promoted = RedisSettings.Endpoint.tcp(host: "10.0.0.6", port: 6380)

    @Test func primaryAddressReplies() {
        #expect(SentinelReply.primaryAddress(.array([bulk("10.0.0.5"), bulk("6379")])) == .primary(self.primary))
        #expect(
            SentinelReply.primaryAddress(.array([bulk("::1"), bulk("26379")]))
                == .primary(.tcp(host: "::1", port: 26379))
        )
        #expect(SentinelReply.primaryAddress(.null) == .unknownMaster)
        #expect(SentinelReply.primaryAddress(.array([])) == .unknownMaster)
        for hostile: RESPValue in [
            .array([bulk("10.0.0.5")]), .array([bulk("10.0.0.5"), bulk("0")]),
            .array([bulk("10.0.0.5"), bulk("65536")]), .array([bulk("10.0.0.5"), bulk("-1")]),
            .array([bulk("10.0.0.5"), bulk("63 79")]), .array([bulk(""), bulk("6379")]),
            .array([bulk("host name"), bulk("6379")]), .array([bulk(String(repeating: "a", count: 300)), bulk("1")]),
            .array([.integer(1), bulk("6379")]), .simpleString("OK"), .error("ERR no such master"),
        ] {
            #expect(SentinelReply.primaryAddress(hostile) == .malformed, "\(hostile)")
        }
    }

    @Test func roleReplies() {
        #expect(SentinelReply.role(.array([bulk("master"), .integer(3_129_659), .array([])])) == .primary)
        #expect(
            SentinelReply.role(
                .array([bulk("slave"), bulk("127.0.0.1"), .integer(9988), bulk("connected"), .integer(1)])
            )
                == .replica
        )
        #expect(SentinelReply.role(.array([bulk("sentinel"), .array([bulk("gw")])])) == .sentinel)
        #expect(SentinelReply.role(.array([bulk("leader")])) == nil)
        #expect(SentinelReply.role(.array([])) == nil)
        #expect(SentinelReply.role(.error("NOPERM this user has no permissions to run the 'role' command")) == nil)
    }

    @Test func switchMasterMessages() {
        func message(_ channel: String, _ payload: String) -> RESPValue {
            .array([bulk("message"), bulk(channel), bulk(payload)])
        }
        #expect(
            SentinelReply.switchMaster(message("+switch-master", "gw 10.0.0.5 6379 10.0.0.6 6380"), masterName: "gw")
                == self.promoted
        )
        // Another master, another channel, a malformed payload: nothing.
        #expect(
            SentinelReply.switchMaster(message("+switch-master", "other 10.0.0.5 6379 10.0.0.6 6380"), masterName: "gw")
                == nil
        )
        #expect(
            SentinelReply.switchMaster(message("+sdown", "gw 10.0.0.5 6379 10.0.0.6 6380"), masterName: "gw") == nil
        )
        #expect(
            SentinelReply.switchMaster(message("+switch-master", "gw 10.0.0.5 6379 10.0.0.6"), masterName: "gw") == nil
        )
        #expect(
            SentinelReply.switchMaster(message("+switch-master", "gw 10.0.0.5 6379 10.0.0.6 99999"), masterName: "gw")
                == nil
        )
        #expect(
            SentinelReply.switchMaster(
                .array([bulk("subscribe"), bulk("+switch-master"), .integer(1)]),
                masterName: "gw"
            ) == nil
        )
    }

    @Test func failoverErrors() {
        #expect(SentinelReply.isFailoverError("READONLY You can't write against a read only replica."))
        #expect(
            SentinelReply.isFailoverError(
                "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
            )
        )
        #expect(!SentinelReply.isFailoverError("WRONGPASS invalid username-password pair or user is disabled."))
        #expect(!SentinelReply.isFailoverError("NOSCRIPT No matching script."))
    }

    @Test func discoveryAsksEachSentinelThenConnectsToThePrimary() {
        var machine = SentinelStateMachine(sentinelCount: 3, masterName: "gw")
        let step1 = machine.beginAttempt()
        #expect(step1 == .askSentinel(0))
        let step2 = machine.sentinelAnswered(0, nil)
        #expect(step2 == .askSentinel(1))
        let step3 = machine.sentinelAnswered(1, .primary(self.primary))
        #expect(step3 == .connect(self.primary))
        #expect(machine.state == .connecting(self.primary))
        let step4 = machine.nodeAnswered(self.primary, role: .primary)
        #expect(step4 == .ready(self.primary))
        #expect(machine.state == .connected(self.primary) && machine.primary == self.primary)
        // The sentinel that answered is asked first next time.
        machine.connectionLost()
        #expect(machine.state == .idle)
        let step5 = machine.beginAttempt()
        #expect(step5 == .askSentinel(1))
    }

    @Test func noSentinelNamingAPrimaryFailsTheAttempt() {
        var machine = SentinelStateMachine(sentinelCount: 2, masterName: "gw")
        let step6 = machine.beginAttempt()
        #expect(step6 == .askSentinel(0))
        let step7 = machine.sentinelAnswered(0, nil)
        #expect(step7 == .askSentinel(1))
        guard case .fail(let text, let refused) = machine.sentinelAnswered(1, .unknownMaster) else {
            Issue.record("expected a failure")
            return
        }
        #expect(text.contains("does not monitor a master named gw") && refused)
        #expect(machine.state == .idle)
        // All unreachable: an outage, not a refusal worth logging.
        let step8 = machine.beginAttempt()
        #expect(step8 == .askSentinel(0))
        let step9 = machine.sentinelAnswered(0, nil)
        #expect(step9 == .askSentinel(1))
        guard case .fail(_, let unreachable) = machine.sentinelAnswered(1, nil) else {
            Issue.record("expected a failure")
            return
        }
        #expect(!unreachable)
    }

    @Test func aNodeThatIsNotThePrimaryIsRefusedAndRediscovered() {
        var machine = SentinelStateMachine(sentinelCount: 1, masterName: "gw")
        _ = machine.beginAttempt()
        let step10 = machine.sentinelAnswered(0, .primary(self.primary))
        #expect(step10 == .connect(self.primary))
        guard case .fail(let text, _) = machine.nodeAnswered(self.primary, role: .replica) else {
            Issue.record("a replica must not be used")
            return
        }
        #expect(text.contains("is a replica"))
        #expect(machine.state == .idle)
        let step11 = machine.beginAttempt()
        #expect(step11 == .askSentinel(0))
    }

    @Test func switchMovesAConnectedMachineStraightToTheNewPrimary() {
        var machine = SentinelStateMachine(sentinelCount: 3, masterName: "gw")
        _ = machine.beginAttempt()
        _ = machine.sentinelAnswered(0, .primary(self.primary))
        _ = machine.nodeAnswered(self.primary, role: .primary)
        // The same primary announced again: nothing to do.
        let step12 = machine.switchAnnounced(to: self.primary)
        #expect(!step12)
        #expect(machine.state == .connected(self.primary))
        // A new one: drop the connection, connect there without asking.
        let step13 = machine.switchAnnounced(to: self.promoted)
        #expect(step13)
        #expect(machine.state == .switching(from: self.primary, to: self.promoted))
        machine.connectionLost()  // the dropped connection closing keeps the switch
        let step14 = machine.beginAttempt()
        #expect(step14 == .connect(self.promoted))
        let step15 = machine.nodeAnswered(self.promoted, role: .primary)
        #expect(step15 == .ready(self.promoted))
        #expect(machine.state == .connected(self.promoted))
    }

    @Test func switchDuringAnAttemptRedirectsIt() {
        var machine = SentinelStateMachine(sentinelCount: 3, masterName: "gw")
        let step16 = machine.beginAttempt()
        #expect(step16 == .askSentinel(0))
        let step17 = machine.switchAnnounced(to: self.promoted)
        #expect(!step17)
        // The old answer arrives after the announcement: the announcement wins.
        let step18 = machine.sentinelAnswered(0, .primary(self.primary))
        #expect(step18 == .connect(self.promoted))
        // A connect to the old node failing while switching goes on to the new one.
        var other = SentinelStateMachine(sentinelCount: 3, masterName: "gw")
        _ = other.beginAttempt()
        _ = other.sentinelAnswered(0, .primary(self.primary))
        _ = other.switchAnnounced(to: self.promoted)
        let step19 = other.nodeFailed(self.primary, reason: "connection refused")
        #expect(step19 == .connect(self.promoted))
        let step20 = other.nodeAnswered(self.promoted, role: .primary)
        #expect(step20 == .ready(self.promoted))
    }
}
