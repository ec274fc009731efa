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
    static func policies(
        route: String?,
        principal: Principal?,
        configuration: GatewayConfiguration
    ) -> [RateLimitPolicy] {
        // No array of names on the way: most requests have no policy at all.
        let own = principal?.rateLimit
        guard route != nil || own != nil else { return [] }
        var policies: [RateLimitPolicy] = []
        if let route, let policy = configuration.rateLimitPolicy(named: route) {
            policies.append(policy)
        }
        if let own, own != route, let policy = configuration.rateLimitPolicy(named: own) {
            policies.append(policy)
        }
        return policies
    }

    /// Decides every policy for `key`; answers inline when no decision waits on Redis.
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
            // The common case (one policy, in Redis): its own future, nothing derived.
            return .later(Pending(single: pending[0]))
        }
        let already = decided
        return .later(
            Pending(
                aggregate: EventLoopFuture.whenAllComplete(pending, on: eventLoop).map { results in
                    already.map { .decided($0) } + results.map(Self.outcome)
                }
            )
        )
    }

    package enum Either {
        case now(Result)
        case later(Pending)
    }

    /// Decisions that wait on Redis; the combined verdict is handed to one callback, with
    /// no future derived per request.
    package struct Pending {
        private enum Source {
            case single(EventLoopFuture<RateLimitOutcome>)
            case aggregate(EventLoopFuture<[RateLimitOutcome]>)
        }

        private let source: Source

        init(single: EventLoopFuture<RateLimitOutcome>) {
            self.source = .single(single)
        }

        init(aggregate: EventLoopFuture<[RateLimitOutcome]>) {
            self.source = .aggregate(aggregate)
        }

        /// Calls `body` with the verdict, on the event loop of the request (which the
        /// limiter's futures share); a failed decision counts as an unreachable store.
        package func whenDecided(_ body: @escaping (Result) -> Void) {
            switch self.source {
            case .single(let future):
                future.assumeIsolated().whenComplete { body(RateLimitGate.combine([RateLimitGate.outcome($0)])) }
            case .aggregate(let future):
                future.assumeIsolated().whenComplete { result in
                    switch result {
                    case .success(let outcomes): body(RateLimitGate.combine(outcomes))
                    case .failure: body(RateLimitGate.combine([.storeUnavailable(policy: "unknown")]))
                    }
                }
            }
        }
    }

    private static func outcome(_ result: Swift.Result<RateLimitOutcome, any Error>) -> RateLimitOutcome {
        switch result {
        case .success(let outcome): return outcome
        case .failure: return .storeUnavailable(policy: "unknown")
        }
    }

    package static func combine(_ outcomes: [RateLimitOutcome]) -> Result {
        var decisions: [RateLimitDecision] = []
        for outcome in outcomes {
            switch outcome {
            case .decided(let decision): decisions.append(decision)
            case .storeUnavailable:
                return .refused(
                    GatewayError(
                        status: 503,
                        code: "rate_limit_unavailable",
                        description:
                            "The rate-limit store cannot be reached and this route's policy is to refuse; retry shortly.",
                        headers: [.init("Retry-After", "1")]
                    )
                )
            }
        }
        guard decisions.contains(where: { !$0.allowed }) else { return .admitted(decisions) }
        let headers = RateLimitHeaders.fields(decisions).map { GatewayError.HeaderField($0.name, $0.value) }
        let wait = decisions.filter { !$0.allowed }.map(\.retryAfterSeconds).max() ?? 1
        return .refused(
            GatewayError(
                status: 429,
                code: "rate_limited",
                description: "Too many requests: retry in \(wait) second\(wait == 1 ? "" : "s").",
                headers: headers
            )
        )
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
        let window = max(1, Int(settings.loginWindow.components.seconds))
        self.perAddress = Self.policy("login-address", attempts: settings.loginAttemptsPerAddress, window: window)
        self.perAccount = Self.policy("login-account", attempts: settings.loginAttemptsPerAccount, window: window)
    }

    /// `/oauth/token`: `[oauth] token_requests_per_address` and `token_requests_per_client`
    /// per minute (the client id is the "account").
    package init(limiter: RateLimiter, eventLoop: any EventLoop, oauth settings: OAuthSettings) {
        self.limiter = limiter
        self.eventLoop = eventLoop
        self.perAddress = Self.policy("oauth-token-address", attempts: settings.tokenRequestsPerAddress, window: 60)
        self.perAccount = Self.policy("oauth-token-client", attempts: settings.tokenRequestsPerClient, window: 60)
    }

    private static func policy(_ name: String, attempts: Int, window: Int) -> RateLimitPolicy {
        RateLimitPolicy.attempts(name, attempts, windowSeconds: window)
    }

    package func admit(
        address: String?,
        account: String?,
        purpose: LoginThrottlePurpose
    ) -> EventLoopFuture<LoginThrottleDecision> {
        // Login keeps its original key names; other purposes count in their own buckets.
        let namespace = purpose == .login ? "" : purpose.rawValue + ":"
        var checks: [(RateLimitPolicy, String)] = []
        if let address {
            checks.append((self.perAddress, namespace + ClientAddress.bucketKey(address)))
        }
        if let account {
            checks.append((self.perAccount, namespace + "account:" + account))
        }
        var futures: [EventLoopFuture<RateLimitOutcome>] = []
        for (policy, key) in checks {
            switch self.limiter.decide(policy: policy, key: key) {
            case .decided(let decision): futures.append(self.eventLoop.makeSucceededFuture(.decided(decision)))
            case .pending(let future): futures.append(future)
            }
        }
        return EventLoopFuture.whenAllSucceed(futures, on: self.eventLoop).map { outcomes in
            switch RateLimitGate.combine(outcomes) {
            case .admitted: return .allowed
            case .refused(let error) where error.status == 429:
                let wait =
                    outcomes.compactMap { outcome -> Int? in
                        if case .decided(let decision) = outcome, !decision.allowed {
                            return decision.retryAfterSeconds
                        }
                        return nil
                    }.max() ?? 1
                return .limited(retryAfterSeconds: wait, headers: error.headers.filter { $0.name != "Retry-After" })
            case .refused:
                return .unavailable
            }
        }.recover { _ in .unavailable }
    }
}
