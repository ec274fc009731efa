import GatewayPages
import GatewayStore
import Testing

@Suite struct BrowserSessionPolicyTests {
    let policy = BrowserSessionPolicy(idleTimeout: 1800, lifetime: 43200)
    func record(created: Int64, seen: Int64) -> BrowserSessionRecord {
        BrowserSessionRecord(userID: "usr_1", email: "a@b.example", createdAt: created, lastSeen: seen, csrfToken: "t")
    }

    @Test func activeWithinBothLimits() {
        #expect(policy.evaluate(record(created: 1000, seen: 1000), now: 1005) == .active(touched: nil, ttl: 1800))
    }

    @Test func touchRewritesLastSeen() {
        guard case .active(let touched?, let ttl) = policy.evaluate(record(created: 1000, seen: 1000), now: 2000) else {
            Issue.record("expected a touched session")
            return
        }
        #expect(touched.lastSeen == 2000)
        #expect(ttl == 1800)
    }

    @Test func idleLimit() {
        #expect(policy.evaluate(record(created: 1000, seen: 1000), now: 2799) != .expired)
        #expect(policy.evaluate(record(created: 1000, seen: 1000), now: 2800) == .expired)
    }

    @Test func absoluteLimitHoldsHoweverActive() {
        #expect(policy.evaluate(record(created: 0, seen: 43199), now: 43200) == .expired)
        // Near the end the store keeps it only until the absolute limit.
        #expect(
            policy.evaluate(record(created: 0, seen: 43000), now: 43100)
                == .active(touched: record(created: 0, seen: 43100), ttl: 100)
        )
    }

    @Test func aRecordFromTheFutureIsRefused() {
        #expect(policy.evaluate(record(created: 10_000, seen: 10_000), now: 1000) == .expired)
    }
}
