// The response fields of one rate-limit decision (`RateLimitHeaders.fields`:
// RateLimit-Policy and RateLimit), as every rate-limited request formats them.
// bench/micro/run.sh rate-limit-headers.
// sources: Sources/GatewayRateLimit/RateLimitHeaders.swift Sources/GatewayRateLimit/RateLimitDecision.swift

/// What RateLimitDecision.swift's bucket initializer reads (the real one needs the
/// configuration module).
enum TokenBucket {
    struct Shape {
        var policy: String
        var burst: Int64
        var rate: Int64
        var periodSeconds: Int64
        var windowSeconds: Int64
    }
}

@main
enum RateLimitHeadersBench {
    static func main() {
        let decision = RateLimitDecision(
            policy: "bench",
            allowed: true,
            limit: 1_000_000,
            remaining: 999_512,
            resetSeconds: 1,
            retryAfterSeconds: 0,
            windowSeconds: 1
        )
        let iterations = Int(CommandLine.arguments.dropFirst().first ?? "1000") ?? 1000
        print(format(decision, iterations))
    }
}

@inline(never)
func format(_ decision: RateLimitDecision, _ count: Int) -> Int {
    var total = 0
    for index in 0..<count {
        var changed = decision
        changed.remaining = index
        for field in RateLimitHeaders.fields(changed) { total &+= field.value.utf8.count }
    }
    return total
}
