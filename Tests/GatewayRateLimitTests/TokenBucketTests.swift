import GatewayConfig
import GatewayTestSupport
import Testing

@testable import GatewayRateLimit

private let second: UInt64 = 1_000_000_000
private let t0: UInt64 = 1_000 * second

private func shape(
    _ rate: Int,
    per periodSeconds: Int64 = 1,
    burst: Int? = nil,
    name: String = "p"
) -> TokenBucket.Shape {
    TokenBucket.Shape(policy: name, rate: rate, periodSeconds: periodSeconds, burst: burst ?? rate)
}

@Suite struct TokenBucketTests {
    @Test func fullBucketAdmitsExactlyBurstThenRefuses() {
        for burst in 1...6 {
            for rate in 1...4 {
                var bucket = TokenBucket(shape: shape(rate, burst: burst), now: t0)
                for expectedRemaining in stride(from: burst - 1, through: 0, by: -1) {
                    let decision = bucket.take(now: t0)
                    #expect(decision.allowed, "rate \(rate) burst \(burst)")
                    #expect(decision.remaining == expectedRemaining)
                    #expect(decision.retryAfterSeconds == 0)
                    #expect(decision.limit == burst)
                }
                let refused = bucket.take(now: t0)
                #expect(!refused.allowed, "rate \(rate) burst \(burst)")
                #expect(refused.remaining == 0)
                // One token takes 1/rate s: rounded up to whole seconds.
                #expect(refused.retryAfterSeconds == 1)
                // Full again after burst/rate s, rounded up.
                #expect(refused.resetSeconds == (burst + rate - 1) / rate)
                #expect(refused.windowSeconds == (burst + rate - 1) / rate)
                #expect(refused.policy == "p")
            }
        }
    }

    @Test func fivePerMinuteRefillsExactlyEveryTwelveSeconds() {
        var bucket = TokenBucket(shape: shape(5, per: 60), now: t0)
        for _ in 0..<5 { #expect(bucket.take(now: t0).allowed) }
        let refused = bucket.take(now: t0)
        #expect(!refused.allowed)
        #expect(refused.retryAfterSeconds == 12)
        #expect(refused.resetSeconds == 60)
        #expect(refused.windowSeconds == 60)
        #expect(!bucket.take(now: t0 + 12 * second - 1).allowed)
        let admitted = bucket.take(now: t0 + 12 * second)
        #expect(admitted.allowed)
        #expect(admitted.remaining == 0)
        #expect(admitted.resetSeconds == 60)
        // Another 12 s for the next; none drifts over an hour of exact steps.
        var now = t0 + 12 * second
        for _ in 0..<300 {
            #expect(!bucket.take(now: now + 12 * second - 1).allowed)
            now += 12 * second
            #expect(bucket.take(now: now).allowed)
        }
    }

    @Test func fractionalIntervalsRoundUpToTheNanosecond() {
        // 3 per second: one token every 333 333 333⅓ ns. Burst 2, emptied at t0, so the
        // bucket never caps and no fraction is lost.
        var bucket = TokenBucket(shape: shape(3, burst: 2), now: t0)
        #expect(bucket.take(now: t0).allowed)
        #expect(bucket.take(now: t0).allowed)
        #expect(!bucket.take(now: t0 + 333_333_333).allowed)
        #expect(bucket.take(now: t0 + 333_333_334).allowed)
        #expect(!bucket.take(now: t0 + 666_666_666).allowed)
        #expect(bucket.take(now: t0 + 666_666_667).allowed)
        // After exactly 1 s, exactly 3 tokens were minted in total: the third is due at 1 s.
        #expect(!bucket.take(now: t0 + second - 1).allowed)
        #expect(bucket.take(now: t0 + second).allowed)
        #expect(!bucket.take(now: t0 + second).allowed)
    }

    @Test func aFullBucketDropsTheFractionBeyondBurst() {
        // Burst 1 at 3/s: the bucket caps at one token, so the ⅓ ns minted beyond it while
        // full is not kept (a token bucket never holds more than burst).
        var bucket = TokenBucket(shape: shape(3, burst: 1), now: t0)
        #expect(bucket.take(now: t0).allowed)
        #expect(bucket.take(now: t0 + 333_333_334).allowed)
        #expect(!bucket.take(now: t0 + 666_666_667).allowed)
        #expect(bucket.take(now: t0 + 666_666_668).allowed)
    }

    @Test func sustainedLoadAdmitsBurstPlusRateTimesElapsed() {
        // 100/s, burst 10, a request every millisecond for 10 s: 10 + 100 × 10.
        var bucket = TokenBucket(shape: shape(100, burst: 10), now: t0)
        var admitted = 0
        for millisecond in 0...10_000 {
            if bucket.take(now: t0 + UInt64(millisecond) * 1_000_000).allowed { admitted += 1 }
        }
        #expect(admitted == 1010)
    }

    @Test func clockStepsBackwardsMintNothing() {
        var bucket = TokenBucket(shape: shape(1, burst: 2), now: t0)
        #expect(bucket.take(now: t0).allowed)
        #expect(bucket.take(now: t0).allowed)
        // Back by 500 s: no time elapsed, nothing refilled.
        #expect(!bucket.take(now: t0 - 500 * second).allowed)
        #expect(!bucket.take(now: 0).allowed)
        // Forward again: the interval t0-500s...t0 is not credited (the stamp stayed at t0).
        #expect(!bucket.take(now: t0 + second - 1).allowed)
        #expect(bucket.take(now: t0 + second).allowed)
        #expect(!bucket.take(now: t0 + second).allowed)
    }

    @Test func hugeIdleGapsFillWithoutOverflow() {
        let largest = shape(RateLimitPolicy.maximumTokens, per: 3600)
        var bucket = TokenBucket(shape: largest, now: 0)
        for _ in 0..<3 { #expect(bucket.take(now: 0).allowed) }
        let late = bucket.take(now: UInt64.max)
        #expect(late.allowed)
        #expect(late.remaining == RateLimitPolicy.maximumTokens - 1)
        // A slow policy over a long gap: still exactly full.
        var slow = TokenBucket(shape: shape(1, per: 3600, burst: RateLimitPolicy.maximumTokens), now: 5)
        for _ in 0..<10 { _ = slow.take(now: 5) }
        #expect(slow.available(now: 5) == RateLimitPolicy.maximumTokens - 10)
        #expect(slow.isFull(now: UInt64.max))
        #expect(slow.available(now: 5 + 3600 * second) == RateLimitPolicy.maximumTokens - 9)
    }

    @Test func burstOne() {
        var bucket = TokenBucket(shape: shape(2, burst: 1), now: t0)
        let first = bucket.take(now: t0)
        #expect(first.allowed)
        #expect(first.remaining == 0)
        #expect(first.resetSeconds == 1)  // 0.5 s, rounded up
        let second = bucket.take(now: t0 + 1)
        #expect(!second.allowed)
        #expect(second.retryAfterSeconds == 1)
        #expect(bucket.take(now: t0 + 500_000_000).allowed)
    }

    @Test func isFullOnlyOnceRefilledToBurst() {
        var bucket = TokenBucket(shape: shape(1, burst: 3), now: t0)
        #expect(bucket.isFull(now: t0))
        _ = bucket.take(now: t0)
        _ = bucket.take(now: t0)
        #expect(!bucket.isFull(now: t0 + 2 * second - 1))
        #expect(bucket.isFull(now: t0 + 2 * second))
    }

    @Test func reshapeKeepsWholeTokensUpToTheNewBurst() {
        var bucket = TokenBucket(shape: shape(10, burst: 10), now: t0)
        for _ in 0..<4 { _ = bucket.take(now: t0) }
        bucket.reshape(to: shape(1, per: 60, burst: 3), now: t0)
        #expect(bucket.available(now: t0) == 3)
        bucket.reshape(to: shape(1, per: 60, burst: 100), now: t0)
        #expect(bucket.available(now: t0) == 3)
        #expect(bucket.take(now: t0).limit == 100)
    }

    /// Random shapes and arrival sequences (seeded): the admitted count never exceeds
    /// burst + rate × elapsed, every refusal's Retry-After admits a client that waits
    /// exactly that long, and the headers' numbers stay in range.
    @Test(arguments: [1, 2, 3, 42, 1234, 99_999])
    func randomArrivalsNeverExceedBurstPlusRateTimesElapsed(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        for _ in 0..<40 {
            let periodSeconds: Int64 = [1, 60, 3600].randomElement(using: &random)!
            let rate = Int.random(in: 1...1000, using: &random)
            let burst = Int.random(in: 1...200, using: &random)
            let bucketShape = shape(rate, per: periodSeconds, burst: burst)
            let start = UInt64.random(in: 0...(1 << 50), using: &random)
            var bucket = TokenBucket(shape: bucketShape, now: start)
            var now = start
            var latest = start
            var admitted = 0
            let tokenNanoseconds = Double(periodSeconds) * 1e9 / Double(rate)
            for _ in 0..<600 {
                switch Int.random(in: 0..<20, using: &random) {
                case 0: now = now &- min(now, UInt64.random(in: 0...(10 * second), using: &random))  // clock steps back
                case 1...3: now += UInt64.random(in: 0...UInt64(tokenNanoseconds * 3), using: &random)
                case 4: now += UInt64.random(in: 0...(2 * 3600 * second), using: &random)
                default: now += UInt64.random(in: 0...UInt64(tokenNanoseconds / 4 + 1), using: &random)
                }
                latest = max(latest, now)
                let decision = bucket.take(now: now)
                #expect(decision.remaining >= 0 && decision.remaining < burst)
                #expect(decision.resetSeconds >= 0 && decision.resetSeconds <= decision.windowSeconds)
                if decision.allowed {
                    admitted += 1
                } else {
                    #expect(decision.retryAfterSeconds >= 1)
                    var waiter = bucket
                    let retryAt = max(now, latest) + UInt64(decision.retryAfterSeconds) * second
                    #expect(
                        waiter.take(now: retryAt).allowed,
                        "seed \(seed): Retry-After \(decision.retryAfterSeconds) s was not enough"
                    )
                }
                // Exact bound in integers: admitted ≤ burst + ⌊rate × elapsed / period⌋.
                let elapsed = latest - start
                let minted = (elapsed.multipliedFullWidth(by: UInt64(rate)))
                let period = UInt64(periodSeconds) * second
                let mintedTokens = minted.high >= period ? UInt64.max : period.dividingFullWidth(minted).quotient
                #expect(UInt64(admitted) <= UInt64(burst) &+ mintedTokens, "seed \(seed)")
            }
        }
    }
}
