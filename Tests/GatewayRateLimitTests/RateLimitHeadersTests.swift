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

/// The formatting before values were written byte by byte (interpolation and a quoting
/// pass over Unicode scalars): the oracle.
private enum ReferenceHeaders {
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"", "\\":
                out.unicodeScalars.append("\\")
                out.unicodeScalars.append(scalar)
            case " "..."~":
                out.unicodeScalars.append(scalar)
            default:
                out.unicodeScalars.append("?")
            }
        }
        out.unicodeScalars.append("\"")
        return out
    }

    static func policy(_ decisions: [RateLimitDecision]) -> String? {
        decisions.isEmpty
            ? nil : decisions.map { "\(quoted($0.policy));q=\($0.limit);w=\($0.windowSeconds)" }.joined(separator: ", ")
    }

    static func rateLimit(_ decisions: [RateLimitDecision]) -> String? {
        decisions.isEmpty
            ? nil
            : decisions.map { "\(quoted($0.policy));r=\($0.remaining);t=\($0.resetSeconds)" }.joined(separator: ", ")
    }
}

@Suite struct RateLimitHeadersWritingTests {
    /// Generated decisions (names with quotes, backslashes, controls, multi-byte scalars,
    /// numbers at the edges of Int) are written as the interpolating formatter wrote them.
    @Test func agreesWithTheInterpolatingFormatter() {
        let names = [
            "default", "", "a\"b", "a\\b", "\\\"", "per-address.v1_2", "tab\there", "nul\u{0}x", "del\u{7F}",
            "é", "e\u{301}", "☃", "🦊x", "日本", "\r\n", "~ !", String(repeating: "z", count: 300),
        ]
        let numbers = [0, 1, 9, 10, 99, 100, 12345, 999_999, 1_000_000, -1, -10, Int.max, Int.min, Int.max - 1]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<400 {
            let decisions = (0..<Int.random(in: 0...3, using: &generator)).map { _ in
                RateLimitDecision(
                    policy: names.randomElement(using: &generator)!,
                    allowed: Bool.random(using: &generator),
                    limit: numbers.randomElement(using: &generator)!,
                    remaining: numbers.randomElement(using: &generator)!,
                    resetSeconds: numbers.randomElement(using: &generator)!,
                    retryAfterSeconds: numbers.randomElement(using: &generator)!,
                    windowSeconds: numbers.randomElement(using: &generator)!
                )
            }
            #expect(RateLimitHeaders.policy(decisions) == ReferenceHeaders.policy(decisions), "\(decisions)")
            #expect(RateLimitHeaders.rateLimit(decisions) == ReferenceHeaders.rateLimit(decisions), "\(decisions)")
        }
        for name in names {
            #expect(RateLimitHeaders.quoted(name) == ReferenceHeaders.quoted(name), "\(Array(name.utf8))")
            // A string made from a slice is written alike.
            let shared = String(("x" + name).dropFirst())
            #expect(RateLimitHeaders.quoted(shared) == ReferenceHeaders.quoted(name))
        }
    }
}
