import GatewayAuth
package import GatewayConfig
package import GatewayCore
package import GatewayRateLimit
package import Logging
import NIOCore

/// `FailedAuthenticationLimit` over the shared `RateLimiter`: the policy
/// `auth-failures-address` (`[auth.api_keys] failures_per_address` per `failure_window`),
/// one bucket per client address (an IPv6 /64), charged only when an authentication fails.
/// The check before a lookup reads this loop's `FailureBudget`, so it costs no Redis call:
/// only a failure does (one `EVALSHA`, shared by every instance when Redis is configured).
///
/// One per event loop; touched only on that loop.
package final class FailedAuthenticationLimiter: FailedAuthenticationLimit {
    private let limiter: RateLimiter
    private let clock: GatewayClock
    private var policy: RateLimitPolicy
    private var budget: FailureBudget
    private var logger: Logger
    /// A log line at most every `logInterval`, however many addresses spend their budget.
    private static let logInterval: TimeAmount = .seconds(10)
    private var lastLog: NIODeadline?
    private var addressesSinceLog = 0

    package init(policy: RateLimitPolicy, limiter: RateLimiter, clock: GatewayClock, logger: Logger) {
        self.policy = policy
        self.limiter = limiter
        self.clock = clock
        self.logger = logger
        self.budget = FailureBudget(TokenBucket.Shape(policy))
    }

    /// A reload's policy; what this loop learned about each address stays.
    package func apply(policy: RateLimitPolicy, logger: Logger) {
        self.policy = policy
        self.logger = logger
        self.budget.reshape(TokenBucket.Shape(policy))
    }

    package func admit(client: String, lookup: Bool) -> GatewayError? {
        let key = ClientAddress.bucketKey(client)
        switch self.budget.admit(key, lookup: lookup, now: self.clock.now()) {
        case .proceed:
            return nil
        case .refuse(let decision):
            return GatewayError(
                status: 429,
                code: "too_many_attempts",
                description:
                    "Too many failed authentications from this address: retry in \(decision.retryAfterSeconds) second\(decision.retryAfterSeconds == 1 ? "" : "s").",
                headers: RateLimitHeaders.fields([decision]).map { GatewayError.HeaderField($0.name, $0.value) }
            )
        }
    }

    package func lookupFinished(client: String) {
        self.budget.lookupFinished(ClientAddress.bucketKey(client), now: self.clock.now())
    }

    package func failed(client: String) {
        let key = ClientAddress.bucketKey(client)
        self.budget.failed(key, now: self.clock.now())
        switch self.limiter.decide(policy: self.policy, key: key) {
        case .decided(let decision):
            self.charged(key, decision, client: client)
        case .pending(let future):
            future.assumeIsolated().whenComplete { result in
                switch result {
                case .success(.decided(let decision)): self.charged(key, decision, client: client)
                case .success(.storeUnavailable), .failure: self.charged(key, nil, client: client)
                }
            }
        }
    }

    private func charged(_ key: String, _ decision: RateLimitDecision?, client: String) {
        let now = self.clock.now()
        guard self.budget.charged(key, decision, now: now), let decision else { return }
        // One line per interval names the latest address and counts the others: a spray
        // from many addresses never becomes a line per address (nor per request).
        self.addressesSinceLog += 1
        if let last = self.lastLog, now < last + Self.logInterval { return }
        self.lastLog = now
        self.logger.warning(
            "failed authentications from a client address exceeded their budget; its requests with credentials not cached as valid get 429 until the budget refills",
            metadata: [
                "client": "\(client)",
                "rate_limit.policy": "\(decision.policy)",
                "retry_after": "\(decision.retryAfterSeconds)",
                "addresses": "\(self.addressesSinceLog)",
            ]
        )
        self.addressesSinceLog = 0
    }
}
