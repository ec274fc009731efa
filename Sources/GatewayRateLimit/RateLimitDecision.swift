/// The answer to one request against one policy, with everything the response headers
/// need.
///
/// Immutable value; any thread.
package struct RateLimitDecision: Sendable, Hashable {
    /// The `[[rate_limits]]` policy name.
    package var policy: String
    package var allowed: Bool
    /// The bucket size (`burst`): the `q` of `RateLimit-Policy`.
    package var limit: Int
    /// Whole tokens left after this decision.
    package var remaining: Int
    /// Seconds until the bucket is full again, rounded up.
    package var resetSeconds: Int
    /// When refused: seconds until one token is available, rounded up, so a client that
    /// waits exactly this long is admitted (unless others took the token first). 0 when
    /// allowed.
    package var retryAfterSeconds: Int
    /// Seconds the bucket takes to refill from empty (`burst / rate`, rounded up): the `w`
    /// of `RateLimit-Policy`, so `q` per `w` is the policy's long-run rate.
    package var windowSeconds: Int

    package init(
        policy: String,
        allowed: Bool,
        limit: Int,
        remaining: Int,
        resetSeconds: Int,
        retryAfterSeconds: Int,
        windowSeconds: Int
    ) {
        self.policy = policy
        self.allowed = allowed
        self.limit = limit
        self.remaining = remaining
        self.resetSeconds = resetSeconds
        self.retryAfterSeconds = retryAfterSeconds
        self.windowSeconds = windowSeconds
    }
}

extension RateLimitDecision {
    /// The decision for a bucket of `shape` holding `credit` units after the take, where
    /// time is counted in ticks of `1 / ticksPerSecond` s (ns locally, µs in Redis): one token
    /// is `periodSeconds × ticksPerSecond` units and the bucket gains `rate` units per tick.
    /// Shared by the local bucket and the Redis script's reply so both round alike.
    init(shape: TokenBucket.Shape, allowed: Bool, credit: Int64, ticksPerSecond: Int64) {
        let perToken = shape.periodSeconds * ticksPerSecond
        let capacity = shape.burst * perToken
        let credit = min(max(credit, 0), capacity)
        let ticksToFull = ceilingDivide(capacity - credit, by: shape.rate)
        let retryAfter: Int64
        if allowed {
            retryAfter = 0
        } else {
            let ticksToToken = ceilingDivide(max(perToken - credit, 0), by: shape.rate)
            // At least 1: a refusal never says "retry now".
            retryAfter = max(1, ceilingDivide(ticksToToken, by: ticksPerSecond))
        }
        self.init(
            policy: shape.policy,
            allowed: allowed,
            limit: Int(shape.burst),
            remaining: Int(credit / perToken),
            resetSeconds: Int(ceilingDivide(ticksToFull, by: ticksPerSecond)),
            retryAfterSeconds: Int(retryAfter),
            windowSeconds: Int(shape.windowSeconds)
        )
    }
}

/// ⌈a / b⌉ for a ≥ 0, b > 0, without overflow.
@inline(__always)
func ceilingDivide(_ a: Int64, by b: Int64) -> Int64 {
    let (quotient, remainder) = a.quotientAndRemainder(dividingBy: b)
    return remainder == 0 ? quotient : quotient + 1
}
