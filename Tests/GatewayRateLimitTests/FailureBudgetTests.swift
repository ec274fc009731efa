import GatewayConfig
import GatewayTestSupport
import NIOCore
import Testing

@testable import GatewayRateLimit

/// A budget of `burst` failures refilling `burst` per minute.
private func shape(_ burst: Int = 3) -> TokenBucket.Shape {
    TokenBucket.Shape(RateLimitPolicy.attempts("auth-failures-address", burst, windowSeconds: 60))
}

/// The limiter's bucket for the same policy, decided on `clock`'s monotonic nanoseconds.
private struct Bucket {
    var bucket: TokenBucket
    let clock: ManualClock

    init(_ shape: TokenBucket.Shape, clock: ManualClock) {
        self.bucket = TokenBucket(shape: shape, now: clock.nanoseconds)
        self.clock = clock
    }

    mutating func take() -> RateLimitDecision { self.bucket.take(now: self.clock.nanoseconds) }
}

private func now(_ clock: ManualClock) -> NIODeadline { clock.clock.now() }

@Suite struct FailureBudgetTests {
    @Test func anAddressNeverChargedProceedsAndLeavesNothingBehind() {
        let clock = ManualClock()
        var budget = FailureBudget(shape())
        for _ in 0..<10 {
            #expect(budget.admit("addr:10.0.0.1", lookup: false, now: now(clock)) == .proceed)
            #expect(budget.admit("addr:10.0.0.1", lookup: true, now: now(clock)) == .proceed)
            budget.lookupFinished("addr:10.0.0.1", now: now(clock))
        }
        // Lookups that found good keys teach nothing: no entry is kept for the address.
        #expect(budget.count == 0)
    }

    @Test func theLastFailureOfTheBudgetRefusesUntilATokenIsBack() throws {
        let clock = ManualClock()
        var budget = FailureBudget(shape(3))
        var bucket = Bucket(shape(3), clock: clock)
        let key = "addr:10.0.0.1"
        for expectedRemaining in [2, 1, 0] {
            #expect(budget.admit(key, lookup: true, now: now(clock)) == .proceed)
            budget.lookupFinished(key, now: now(clock))
            budget.failed(key, now: now(clock))
            let decision = bucket.take()
            #expect(decision.allowed && decision.remaining == expectedRemaining)
            // The third took the last token: newly refused (logged), no fourth failure needed.
            #expect(budget.charged(key, decision, now: now(clock)) == (expectedRemaining == 0))
        }
        // Spent: every kind of request with a credential not known good is refused at once.
        for lookup in [true, false] {
            guard case .refuse(let decision) = budget.admit(key, lookup: lookup, now: now(clock)) else {
                Issue.record("a spent budget must refuse (lookup: \(lookup))")
                continue
            }
            #expect(!decision.allowed)
            #expect(decision.policy == "auth-failures-address")
            #expect(decision.limit == 3 && decision.remaining == 0)
            #expect(decision.retryAfterSeconds == 20, "3 per minute: a token every 20 s")
            #expect(decision.resetSeconds == 60)
            #expect(decision.windowSeconds == 60)
        }
        clock.advance(seconds: 19)
        guard case .refuse(let later) = budget.admit(key, lookup: true, now: now(clock)) else {
            Issue.record("still refused 1 s before the token is back")
            return
        }
        #expect(later.retryAfterSeconds == 1)
        // Another address is not affected.
        #expect(budget.admit("addr:10.0.0.2", lookup: true, now: now(clock)) == .proceed)
        budget.lookupFinished("addr:10.0.0.2", now: now(clock))

        // The token is back: one lookup at a time may try it.
        clock.advance(seconds: 1)
        #expect(budget.admit(key, lookup: true, now: now(clock)) == .proceed)
        #expect(budget.admit(key, lookup: true, now: now(clock)) != .proceed, "one token: one lookup at a time")
        budget.lookupFinished(key, now: now(clock))
        budget.failed(key, now: now(clock))
        let afterRefill = bucket.take()
        #expect(afterRefill.allowed && afterRefill.remaining == 0)
        #expect(budget.charged(key, afterRefill, now: now(clock)) == true)
        #expect(budget.admit(key, lookup: false, now: now(clock)) != .proceed)

        // A refusal from the limiter itself (another instance spent the budget) refuses too.
        clock.advance(seconds: 20)
        #expect(budget.admit(key, lookup: false, now: now(clock)) == .proceed)
        _ = bucket.take()
        budget.failed(key, now: now(clock))
        let refusedCharge = bucket.take()
        #expect(!refusedCharge.allowed)
        budget.charged(key, refusedCharge, now: now(clock))
        #expect(budget.admit(key, lookup: true, now: now(clock)) != .proceed)
    }

    @Test func lookupsUnderWayCountAgainstWhatIsLeftSoABurstCannotOverspend() {
        let clock = ManualClock()
        var budget = FailureBudget(shape(5))
        let key = "addr6:2001:db8::/64"
        // Never charged: up to the whole budget may be looked up at once, not one more.
        for _ in 0..<5 {
            #expect(budget.admit(key, lookup: true, now: now(clock)) == .proceed)
        }
        #expect(budget.admit(key, lookup: true, now: now(clock)) != .proceed)
        // A failure known without a lookup is still judged (and charged by the caller).
        #expect(budget.admit(key, lookup: false, now: now(clock)) == .proceed)
        // Two lookups fail: their charges are under way, the estimate already counts them.
        for _ in 0..<2 {
            budget.lookupFinished(key, now: now(clock))
            budget.failed(key, now: now(clock))
        }
        // 3 lookups under way, 5 - 2 = 3 failures left: no room.
        #expect(budget.admit(key, lookup: true, now: now(clock)) != .proceed)
        // The limiter answers the first charge (4 left then); one charge is still under way,
        // so 3 are left, all taken by lookups under way.
        let first = RateLimitDecision(
            policy: "auth-failures-address",
            allowed: true,
            limit: 5,
            remaining: 4,
            resetSeconds: 12,
            retryAfterSeconds: 0,
            windowSeconds: 60
        )
        budget.charged(key, first, now: now(clock))
        #expect(budget.admit(key, lookup: true, now: now(clock)) != .proceed)
        // One lookup found a good key: room for one more.
        budget.lookupFinished(key, now: now(clock))
        #expect(budget.admit(key, lookup: true, now: now(clock)) == .proceed)
    }

    @Test func whatWasLearnedIsForgottenOnceTheBucketWouldBeFull() {
        let clock = ManualClock()
        var budget = FailureBudget(shape(2))
        let key = "addr:10.0.0.9"
        budget.failed(key, now: now(clock))
        let decision = RateLimitDecision(
            policy: "auth-failures-address",
            allowed: true,
            limit: 2,
            remaining: 1,
            resetSeconds: 30,
            retryAfterSeconds: 0,
            windowSeconds: 60
        )
        budget.charged(key, decision, now: now(clock))
        #expect(budget.admit(key, lookup: true, now: now(clock)) == .proceed)
        #expect(budget.admit(key, lookup: true, now: now(clock)) != .proceed, "one failure left: one at a time")
        budget.lookupFinished(key, now: now(clock))
        clock.advance(seconds: 30)
        // Full again: the whole budget may be looked up at once, and the entry goes.
        #expect(budget.admit(key, lookup: true, now: now(clock)) == .proceed)
        #expect(budget.admit(key, lookup: true, now: now(clock)) == .proceed)
        budget.lookupFinished(key, now: now(clock))
        budget.lookupFinished(key, now: now(clock))
        #expect(budget.count == 0)
    }

    @Test func aLastFailureWhoseChargeIsUnansweredRefusesUntilTheLimiterAnswers() {
        let clock = ManualClock()
        var budget = FailureBudget(shape(1))
        let key = "addr:10.0.0.5"
        // One failure spends a budget of one; its charge is on its way to Redis.
        #expect(budget.admit(key, lookup: true, now: now(clock)) == .proceed)
        budget.lookupFinished(key, now: now(clock))
        budget.failed(key, now: now(clock))
        for lookup in [true, false] {
            #expect(budget.admit(key, lookup: lookup, now: now(clock)) != .proceed, "lookup: \(lookup)")
        }
        // Redis answers: the bucket had regained tokens meanwhile (another window began).
        let decision = RateLimitDecision(
            policy: "auth-failures-address",
            allowed: true,
            limit: 1,
            remaining: 1,
            resetSeconds: 60,
            retryAfterSeconds: 0,
            windowSeconds: 60
        )
        #expect(budget.charged(key, decision, now: now(clock)) == false)
        #expect(budget.admit(key, lookup: true, now: now(clock)) == .proceed)
    }

    @Test func anUnansweredChargeKeepsTheLocalEstimate() {
        let clock = ManualClock()
        var budget = FailureBudget(shape(2))
        let key = "addr:10.0.0.3"
        for _ in 0..<2 {
            budget.failed(key, now: now(clock))
            #expect(budget.charged(key, nil, now: now(clock)) == false)
        }
        // Both failures counted here although the limiter could not be asked.
        #expect(budget.admit(key, lookup: true, now: now(clock)) == .proceed)
        #expect(budget.admit(key, lookup: true, now: now(clock)) != .proceed)
    }

    @Test func staysBoundedUnderManyAddresses() {
        let clock = ManualClock()
        var budget = FailureBudget(shape(1), maximumEntries: 100)
        for index in 0..<10_000 {
            budget.failed("addr6:2001:db8:\(index)::/64", now: now(clock))
            #expect(budget.count <= 100)
        }
    }

    @Test func aSmallerBudgetOnReloadCapsWhatWasLearned() {
        let clock = ManualClock()
        var budget = FailureBudget(shape(10))
        let key = "addr:10.0.0.4"
        budget.failed(key, now: now(clock))
        budget.reshape(shape(2))
        #expect(budget.shape.burst == 2)
        #expect(budget.admit(key, lookup: true, now: now(clock)) == .proceed)
        #expect(budget.admit(key, lookup: true, now: now(clock)) == .proceed)
        #expect(budget.admit(key, lookup: true, now: now(clock)) != .proceed)
    }
}
