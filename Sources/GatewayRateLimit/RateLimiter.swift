package import GatewayConfig
import GatewayRedis
package import Logging
package import NIOCore

/// What a rate-limit decision came to, once known. A value; any thread.
package enum RateLimitOutcome: Sendable, Hashable {
    /// Allowed or refused (429), with the numbers for the headers.
    case decided(RateLimitDecision)
    /// Redis could not decide in time and the policy says `on_store_unavailable = "deny"`:
    /// answer 503 (an outage is not the caller's fault: never 429, never 401).
    case storeUnavailable(policy: String)
}

/// The answer of `RateLimiter.decide`: inline when no I/O or thread hop was needed (the
/// common local case allocates no future), else a future that completes on the asking
/// loop and never fails (every failure is already mapped to an outcome). Used on that loop.
package enum RateLimitVerdict {
    case decided(RateLimitDecision)
    case pending(EventLoopFuture<RateLimitOutcome>)
}

/// The rate limiter one event loop's request path asks.
///
/// Mode Redis when `redis` is given (one shared bucket per key across instances), local
/// otherwise (the process's `LocalRateLimiter`, exact across loops). When Redis fails or
/// does not answer within the command timeout, the policy's `on_store_unavailable` decides:
/// `local` decides with the local buckets (counted in `fallbackDecisions`, logged once per
/// outage), `deny` gives `.storeUnavailable` (counted in `deniedUnavailable`).
///
/// One per event loop; touched only on that loop. The counters are plain integers read on
/// the loop (a metrics scrape submits to each loop and adds them up).
package final class RateLimiter {
    package let eventLoop: any EventLoop
    private let local: LocalRateLimiter
    private let redis: RedisRateLimiter?
    private let logger: Logger
    /// True between a failed Redis decision and the next successful one: logs once per outage.
    private var storeDown = false

    /// Decisions Redis made.
    package private(set) var redisDecisions = 0
    /// Decisions made locally because no Redis is configured.
    package private(set) var localDecisions = 0
    /// Decisions made locally because Redis failed (`on_store_unavailable = "local"`).
    package private(set) var fallbackDecisions = 0
    /// Requests refused with 503 because Redis failed (`on_store_unavailable = "deny"`).
    package private(set) var deniedUnavailable = 0
    /// Redis script calls sent, by how many decisions each carried (index = decisions; empty
    /// without Redis).
    package var redisCallsByDecisions: [Int] { self.redis?.callsByDecisions ?? [] }

    /// - Parameters:
    ///   - local: the process's shared local limiter (mode local, and the fallback).
    ///   - redis: this loop's Redis limiter, or nil without `[redis]`.
    package init(eventLoop: any EventLoop, local: LocalRateLimiter, redis: RedisRateLimiter?, logger: Logger) {
        precondition(redis.map { $0.eventLoop === eventLoop } ?? true, "the Redis limiter must live on the same loop")
        self.eventLoop = eventLoop
        self.local = local
        self.redis = redis
        self.logger = logger
    }

    /// Takes one token of `policy` for `key` (the principal, or the client address on
    /// unauthenticated endpoints). Call on this limiter's loop.
    package func decide(policy: RateLimitPolicy, key: String) -> RateLimitVerdict {
        self.decide(policy: policy, key: key, take: true)
    }

    /// What `decide` would answer now, without taking a token and without counting a
    /// decision (explain). A Redis failure is answered as `on_store_unavailable` says.
    package func peek(policy: RateLimitPolicy, key: String) -> RateLimitVerdict {
        self.decide(policy: policy, key: key, take: false)
    }

    private func decide(policy: RateLimitPolicy, key: String, take: Bool) -> RateLimitVerdict {
        self.eventLoop.preconditionInEventLoop()
        let shape = TokenBucket.Shape(policy)
        guard let redis = self.redis else {
            if !take {
                switch self.local.peek(shape, key: key, on: self.eventLoop) {
                case .decided(let decision): return .decided(decision)
                case .pending(let future): return .pending(future.map { .decided($0) })
                }
            }
            self.localDecisions += 1
            switch self.local.decide(shape, key: key, on: self.eventLoop) {
            case .decided(let decision): return .decided(decision)
            case .pending(let future): return .pending(future.map { .decided($0) })
            }
        }
        let onUnavailable = policy.onStoreUnavailable
        let asked = take ? redis.decide(shape, key: key) : redis.peek(shape, key: key)
        // One promise and one callback per decision rather than a chain of derived futures
        // (every rate-limited request takes this path when Redis keeps the buckets).
        let promise = self.eventLoop.makePromise(of: RateLimitOutcome.self)
        asked.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let decision):
                if take {
                    self.redisDecisions += 1
                    if self.storeDown {
                        self.storeDown = false
                        self.logger.notice(
                            "rate-limit store reachable again",
                            metadata: ["rate_limit.policy": "\(shape.policy)"]
                        )
                    }
                }
                promise.succeed(.decided(decision))
            case .failure(let error):
                if take {
                    self.storeFailed(error, policy: shape.policy, onUnavailable: onUnavailable)
                }
                switch onUnavailable {
                case .deny:
                    if take { self.deniedUnavailable += 1 }
                    promise.succeed(.storeUnavailable(policy: shape.policy))
                case .local:
                    if take { self.fallbackDecisions += 1 }
                    let verdict =
                        take
                        ? self.local.decide(shape, key: key, on: self.eventLoop)
                        : self.local.peek(shape, key: key, on: self.eventLoop)
                    switch verdict {
                    case .decided(let decision): promise.succeed(.decided(decision))
                    case .pending(let future): future.map { .decided($0) }.cascade(to: promise)
                    }
                }
            }
        }
        return .pending(promise.futureResult)
    }

    private func storeFailed(_ error: any Error, policy: String, onUnavailable: RateLimitPolicy.StoreUnavailablePolicy)
    {
        guard !self.storeDown else { return }
        self.storeDown = true
        let reason: String
        switch error {
        case RateLimitStoreError.timeout, RedisClientError.timeout: reason = "timeout"
        case RedisClientError.unavailable: reason = "unavailable"
        case RedisClientError.connectionClosed: reason = "connection closed"
        case RedisClientError.protocolError: reason = "protocol error"
        case RedisClientError.server: reason = "server error"
        default: reason = "error"
        }
        self.logger.warning(
            "rate-limit store unavailable; deciding by on_store_unavailable until it answers again",
            metadata: [
                "rate_limit.policy": "\(policy)", "rate_limit.on_store_unavailable": "\(onUnavailable.rawValue)",
                "error": "\(reason)",
            ]
        )
    }
}
