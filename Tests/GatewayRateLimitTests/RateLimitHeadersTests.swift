import Testing

@testable import GatewayRateLimit

private func decision(
    _ policy: String,
    allowed: Bool = true,
    limit: Int = 100,
    remaining: Int = 42,
    reset: Int = 3,
    retryAfter: Int = 0,
    window: Int = 10
) -> RateLimitDecision {
    RateLimitDecision(
        policy: policy,
        allowed: allowed,
        limit: limit,
        remaining: remaining,
        resetSeconds: reset,
        retryAfterSeconds: retryAfter,
        windowSeconds: window
    )
}

@Suite struct RateLimitHeadersTests {
    @Test func oneAllowedDecision() {
        let fields = RateLimitHeaders.fields(decision("default"))
        #expect(fields.map(\.name) == ["RateLimit-Policy", "RateLimit"])
        #expect(fields.map(\.value) == [#""default";q=100;w=10"#, #""default";r=42;t=3"#])
    }

    @Test func refusalAddsRetryAfter() {
        let refused = decision("login", allowed: false, limit: 5, remaining: 0, reset: 60, retryAfter: 12, window: 60)
        let fields = RateLimitHeaders.fields(refused)
        #expect(fields.map(\.name) == ["RateLimit-Policy", "RateLimit", "Retry-After"])
        #expect(fields.map(\.value) == [#""login";q=5;w=60"#, #""login";r=0;t=60"#, "12"])
    }

    @Test func severalPoliciesAreListMembersInOrder() {
        let decisions = [
            decision("per-address", allowed: false, limit: 10, remaining: 0, reset: 9, retryAfter: 2, window: 10),
            decision("per-account", allowed: true, limit: 5, remaining: 4, reset: 12, window: 60),
            decision("burst", allowed: false, limit: 1, remaining: 0, reset: 7, retryAfter: 7, window: 7),
        ]
        #expect(
            RateLimitHeaders.policy(decisions) == #""per-address";q=10;w=10, "per-account";q=5;w=60, "burst";q=1;w=7"#
        )
        #expect(
            RateLimitHeaders.rateLimit(decisions) == #""per-address";r=0;t=9, "per-account";r=4;t=12, "burst";r=0;t=7"#
        )
        // Every refusing policy must have a token again: the longest wait.
        #expect(RateLimitHeaders.retryAfter(decisions) == "7")
    }

    @Test func noDecisionsNoFields() {
        #expect(RateLimitHeaders.fields([RateLimitDecision]()).isEmpty)
        #expect(RateLimitHeaders.retryAfter([decision("a")]) == nil)
    }

    @Test func policyNamesAreQuotedAsStructuredFieldStrings() {
        #expect(RateLimitHeaders.quoted("a.b_c-1") == #""a.b_c-1""#)
        #expect(RateLimitHeaders.quoted(#"x"y\z"#) == #""x\"y\\z""#)
        #expect(RateLimitHeaders.quoted("é\n") == #""??""#)
    }

    @Test func headersFromARealBucket() {
        var bucket = TokenBucket(
            shape: TokenBucket.Shape(policy: "tier-gold", rate: 5, periodSeconds: 60, burst: 3),
            now: 0
        )
        _ = bucket.take(now: 0)
        let second = bucket.take(now: 0)
        #expect(RateLimitHeaders.policy([second]) == #""tier-gold";q=3;w=36"#)
        #expect(RateLimitHeaders.rateLimit([second]) == #""tier-gold";r=1;t=24"#)
    }
}
