package import GatewayConfig
package import GatewayStore

/// When a browser session is over: after `idleTimeout` without use, and `lifetime` after
/// sign-in however active. Pure; a value; any thread.
package struct BrowserSessionPolicy: Sendable, Hashable {
    package var idleTimeout: Int64
    package var lifetime: Int64
    /// `lastSeen` is rewritten at most this often (seconds): one store write per page view
    /// is not needed to keep an idle limit of minutes.
    package static let touchInterval: Int64 = 15

    package init(idleTimeout: Int64, lifetime: Int64) {
        self.idleTimeout = idleTimeout
        self.lifetime = lifetime
    }

    package init(_ settings: UISettings) {
        self.init(
            idleTimeout: settings.sessionIdleTimeout.components.seconds,
            lifetime: settings.sessionLifetime.components.seconds
        )
    }

    package enum Verdict: Sendable, Equatable {
        /// Still valid; when `touched` is set, store it (with `ttl`) to extend the idle limit.
        case active(touched: BrowserSessionRecord?, ttl: Int64)
        case expired
    }

    /// Seconds the store should keep a session seen at `now`.
    package func ttl(createdAt: Int64, now: Int64) -> Int64 {
        max(0, min(self.idleTimeout, createdAt + self.lifetime - now))
    }

    package func evaluate(_ record: BrowserSessionRecord, now: Int64) -> Verdict {
        guard now - record.lastSeen < self.idleTimeout, now - record.createdAt < self.lifetime,
            record.createdAt <= now + 60
        else {
            return .expired
        }
        let ttl = self.ttl(createdAt: record.createdAt, now: now)
        guard now - record.lastSeen >= Self.touchInterval else { return .active(touched: nil, ttl: ttl) }
        var touched = record
        touched.lastSeen = now
        return .active(touched: touched, ttl: ttl)
    }
}
