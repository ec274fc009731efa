package import GatewayAuth
package import GatewayConfig
package import GatewayCore
package import GatewayRateLimit
package import NIOCore

/// Which token buckets a request draws from, and the combined verdict: the route's policy
/// and the credential's own policy (an API key tier), each keyed by the principal, or by
/// the client address on anonymous requests. The request passes only if every bucket
/// admits it. Pure composition over `RateLimiter`; used on one event loop.
package enum RateLimitGate {
    package enum Result {
        /// Admitted; the decisions feed the `RateLimit` headers (empty: not limited).
        case admitted([RateLimitDecision])
        case refused(GatewayError)
    }

    /// The policies that apply, by name, in a stable order (route first).
    static func policies(route: String?, principal: Principal?, configuration: GatewayConfiguration) -> [RateLimitPolicy] {
        var names: [String] = []
        if let route { names.append(route) }
        if let own = principal?.rateLimit, !names.contains(own) { names.append(own) }
        return names.compactMap { configuration.rateLimitPolicy(named: $0) }
    }

    /// Decides every policy for `key`; completes inline when no decision waits on Redis.
    static func evaluate(
        _ policies: [RateLimitPolicy],
        key: String,
        limiter: RateLimiter,
        eventLoop: any EventLoop
    ) -> Either {
        var decided: [RateLimitDecision] = []
        var pending: [EventLoopFuture<RateLimitOutcome>] = []
        for policy in policies {
            switch limiter.decide(policy: policy, key: key) {
            case .decided(let decision): decided.append(decision)
            case .pending(let future): pending.append(future)
            }
        }
        if pending.isEmpty { return .now(Self.combine(decided.map { .decided($0) })) }
        if pending.count == 1, decided.isEmpty {
            // The common case (one policy, in Redis): no aggregate future.
            return .later(pending[0].map { Self.combine([$0]) })
        }
        let already = decided
        return .later(EventLoopFuture.whenAllComplete(pending, on: eventLoop).map { results in
            let outcomes = results.map { result -> RateLimitOutcome in
                switch result {
                case .success(let outcome): return outcome
                case .failure: return .storeUnavailable(policy: "unknown")
                }
            }
            return Self.combine(already.map { .decided($0) } + outcomes)
        })
    }

    package enum Either {
        case now(Result)
        case later(EventLoopFuture<Result>)
    }

    static func combine(_ outcomes: [RateLimitOutcome]) -> Result {
        var decisions: [RateLimitDecision] = []
        for outcome in outcomes {
            switch outcome {
            case .decided(let decision): decisions.append(decision)
            case .storeUnavailable:
                return .refused(GatewayError(
                    status: 503, code: "rate_limit_unavailable",
                    description: "The rate-limit store cannot be reached and this route's policy is to refuse; retry shortly.",
                    headers: [.init("Retry-After", "1")]))
            }
        }
        guard decisions.contains(where: { !$0.allowed }) else { return .admitted(decisions) }
        let headers = RateLimitHeaders.fields(decisions).map { GatewayError.HeaderField($0.name, $0.value) }
        let wait = decisions.filter { !$0.allowed }.map(\.retryAfterSeconds).max() ?? 1
        return .refused(GatewayError(
            status: 429, code: "rate_limited",
            description: "Too many requests: retry in \(wait) second\(wait == 1 ? "" : "s").",
            headers: headers))
    }
}

/// `LoginThrottle` over the shared `RateLimiter`: one bucket per client address and one per
/// account, from `[auth.jwt] login_attempts_per_address/account` (per minute), in Redis
/// when it is configured so every instance counts the same attempts. Event loop only.
package final class RateLimitedLoginThrottle: LoginThrottle {
    private let limiter: RateLimiter
    private let eventLoop: any EventLoop
    private let perAddress: RateLimitPolicy
    private let perAccount: RateLimitPolicy

    package init(limiter: RateLimiter, eventLoop: any EventLoop, settings: JWTSettings) {
        self.limiter = limiter
        self.eventLoop = eventLoop
        let perMinute = max(1, Int(settings.loginWindow.components.seconds))
        // Attempts per window, expressed as a bucket refilling over the window.
        self.perAddress = RateLimitPolicy(
            name: "login-address", rate: settings.loginAttemptsPerAddress, per: .second,
            burst: settings.loginAttemptsPerAddress)
        self.perAccount = RateLimitPolicy(
            name: "login-account", rate: settings.loginAttemptsPerAccount, per: .second,
            burst: settings.loginAttemptsPerAccount)
        self.windowSeconds = perMinute
    }

    private let windowSeconds: Int

    package func admit(address: String, account: String?, now: NIODeadline) -> EventLoopFuture<LoginThrottleDecision> {
        var policies = [self.scaled(self.perAddress)]
        // SessionEndpoints marks refresh attempts "refresh <address>": their own buckets.
        let refreshPrefix = "refresh "
        var keys = [
            address.hasPrefix(refreshPrefix)
                ? "refresh:" + ClientAddress.bucketKey(String(address.dropFirst(refreshPrefix.count)))
                : ClientAddress.bucketKey(address)
        ]
        if let account {
            policies.append(self.scaled(self.perAccount))
            keys.append("account:" + account)
        }
        var futures: [EventLoopFuture<RateLimitOutcome>] = []
        for (policy, key) in zip(policies, keys) {
            switch self.limiter.decide(policy: policy, key: key) {
            case .decided(let decision): futures.append(self.eventLoop.makeSucceededFuture(.decided(decision)))
            case .pending(let future): futures.append(future)
            }
        }
        return EventLoopFuture.whenAllSucceed(futures, on: self.eventLoop).map { outcomes in
            switch RateLimitGate.combine(outcomes) {
            case .admitted: return .allowed
            case .refused(let error) where error.status == 429:
                let wait = outcomes.compactMap { outcome -> Int? in
                    if case .decided(let decision) = outcome, !decision.allowed { return decision.retryAfterSeconds }
                    return nil
                }.max() ?? 1
                return .limited(retryAfterSeconds: wait, headers: error.headers.filter { $0.name != "Retry-After" })
            case .refused:
                return .unavailable
            }
        }.recover { _ in .unavailable }
    }

    /// `n` attempts per window W: a bucket of `n` refilling `n` per W. Policies count in
    /// whole periods, so the window is expressed through the hour/minute/second period
    /// that divides it.
    private func scaled(_ policy: RateLimitPolicy) -> RateLimitPolicy {
        var scaled = policy
        switch self.windowSeconds {
        case 3600: scaled.per = .hour
        case 60: scaled.per = .minute
        case 1: scaled.per = .second
        default:
            // Refill `burst` tokens per window: rate per minute scaled, rounded up.
            scaled.per = .hour
            scaled.rate = max(1, (policy.burst * 3600 + self.windowSeconds - 1) / self.windowSeconds)
        }
        return scaled
    }
}
