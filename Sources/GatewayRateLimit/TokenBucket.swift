package import GatewayConfig

/// One token bucket: pure logic, the clock passed in.
///
/// Exact integer arithmetic, no floating point: time is in nanoseconds and credit is
/// counted in units where one token is `periodSeconds × 10⁹` units and the bucket gains
/// `rate` units per nanosecond. So "5 per minute" adds exactly 5 units per ns against
/// 60·10⁹ units per token, with no rounding anywhere and no drift however long it runs.
/// The configuration caps rate and burst at 10⁶, so the largest capacity (10⁶ tokens per
/// hour) is 3.6·10¹⁸ units, inside `Int64`.
///
/// Clock steps backwards are treated as no elapsed time, and the bucket keeps its later
/// timestamp, so the same interval is never credited twice. Idle gaps of any length fill
/// the bucket without multiplying (no overflow).
///
/// A value type owned by whoever holds it (a `LocalRateLimiter` shard, on its event loop).
package struct TokenBucket: Sendable, Hashable {
    /// The shape of a policy's buckets, in integers. Immutable value; any thread.
    package struct Shape: Sendable, Hashable {
        package let policy: String
        /// Tokens added per period.
        package let rate: Int64
        package let periodSeconds: Int64
        package let burst: Int64

        package init(policy: String, rate: Int, periodSeconds: Int64, burst: Int) {
            precondition(
                rate >= 1 && burst >= 1 && periodSeconds >= 1,
                "a bucket needs rate, burst and period of at least 1"
            )
            precondition(
                rate <= RateLimitPolicy.maximumTokens && burst <= RateLimitPolicy.maximumTokens
                    && periodSeconds <= 3600,
                "rate and burst at most \(RateLimitPolicy.maximumTokens), period at most an hour"
            )
            self.policy = policy
            self.rate = Int64(rate)
            self.periodSeconds = periodSeconds
            self.burst = Int64(burst)
        }

        package init(_ policy: RateLimitPolicy) {
            self.init(policy: policy.name, rate: policy.rate, periodSeconds: policy.per.seconds, burst: policy.burst)
        }

        /// Seconds to refill from empty, rounded up: `burst × period / rate`.
        package var windowSeconds: Int64 {
            ceilingDivide(self.burst * self.periodSeconds, by: self.rate)
        }

        var unitsPerToken: Int64 { self.periodSeconds * TokenBucket.ticksPerSecond }
        var capacity: Int64 { self.burst * self.unitsPerToken }
    }

    static let ticksPerSecond: Int64 = 1_000_000_000

    package private(set) var shape: Shape
    /// 0...shape.capacity.
    private var credit: Int64
    /// Monotonic nanoseconds of the last refill; never moves backwards.
    private var updatedAt: UInt64

    /// A full bucket (a principal never seen, or quiet for long enough).
    package init(shape: Shape, now: UInt64) {
        self.shape = shape
        self.credit = shape.capacity
        self.updatedAt = now
    }

    /// Takes one token if there is one.
    package mutating func take(now: UInt64) -> RateLimitDecision {
        self.refill(now: now)
        let perToken = self.shape.unitsPerToken
        let allowed = self.credit >= perToken
        if allowed {
            self.credit -= perToken
        }
        return RateLimitDecision(
            shape: self.shape,
            allowed: allowed,
            credit: self.credit,
            ticksPerSecond: Self.ticksPerSecond
        )
    }

    /// Whether the bucket has refilled to `burst` by `now`; a full bucket is equivalent to
    /// none, so it can be forgotten.
    package func isFull(now: UInt64) -> Bool {
        var copy = self
        copy.refill(now: now)
        return copy.credit == copy.shape.capacity
    }

    /// Whole tokens available at `now` (without taking one).
    package func available(now: UInt64) -> Int {
        var copy = self
        copy.refill(now: now)
        return Int(copy.credit / copy.shape.unitsPerToken)
    }

    /// The same bucket under a new shape (the policy changed on reload): whole tokens are
    /// kept, at most the new burst; the fraction of a token in progress is dropped.
    package mutating func reshape(to shape: Shape, now: UInt64) {
        guard shape != self.shape else { return }
        self.refill(now: now)
        let tokens = min(self.credit / self.shape.unitsPerToken, shape.burst)
        self.shape = shape
        self.credit = tokens * shape.unitsPerToken
    }

    private mutating func refill(now: UInt64) {
        guard now > self.updatedAt else { return }  // backwards or same instant: nothing elapsed
        let elapsed = now - self.updatedAt
        self.updatedAt = now
        let missing = self.shape.capacity - self.credit
        guard missing > 0 else { return }
        // Compare in time, not credit, so a huge gap never multiplies into an overflow.
        let ticksToFull = UInt64(ceilingDivide(missing, by: self.shape.rate))
        if elapsed >= ticksToFull {
            self.credit = self.shape.capacity
        } else {
            // elapsed < ticksToFull ≤ capacity, so elapsed × rate < capacity + rate: no overflow.
            self.credit += Int64(elapsed) * self.shape.rate
        }
    }
}
