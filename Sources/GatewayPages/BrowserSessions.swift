package import GatewayCore
package import GatewayStore
package import NIOCore

/// Who is signed in to a browser: reads the session cookie of a request, checks the
/// session against its idle and absolute limits and its user against the user store (still
/// there, enabled, the same id) on every use, moves `lastSeen` on, and creates and ends
/// sessions. Every page set (the OAuth pages, later the settings pages) uses this one type.
/// One per event loop; touched only there.
package final class BrowserSessions {
    /// A signed-in browser: its session and its user as of this request.
    package struct Active: Sendable {
        /// SHA-256 hex of the cookie value: the store key, never the value.
        package var hash: String
        package var record: BrowserSessionRecord
        package var user: UserRecord
    }

    private let store: any BrowserStateStore
    private let users: any SessionStore
    package let policy: BrowserSessionPolicy
    private let clock: GatewayClock

    package init(
        store: any BrowserStateStore,
        users: any SessionStore,
        policy: BrowserSessionPolicy,
        clock: GatewayClock
    ) {
        self.store = store
        self.users = users
        self.policy = policy
        self.clock = clock
    }

    /// The request's session, or nil: no (or an ambiguous) cookie, unknown, expired, or its
    /// user gone, disabled or replaced. An expired or orphaned session is deleted.
    package func current(_ request: LocalRequest, eventLoop: any EventLoop) -> EventLoopFuture<Active?> {
        guard
            let value = BrowserCookies.value(
                named: BrowserCookies.sessionName(isTLS: request.isTLS),
                in: request.values(of: "Cookie")
            )
        else {
            return eventLoop.makeSucceededFuture(nil)
        }
        let hash = PageRandom.hash(value)
        let store = self.store
        let now = self.clock.unixSeconds()
        return store.session(hash: hash).assumeIsolated().flatMap { record -> EventLoopFuture<Active?> in
            guard let record else { return eventLoop.makeSucceededFuture(nil) }
            guard case .active(let touched, let ttl) = self.policy.evaluate(record, now: now) else {
                return store.deleteSession(hash: hash).map { nil }
            }
            return self.users.user(email: record.email).assumeIsolated().flatMap { user -> EventLoopFuture<Active?> in
                guard let user, !user.disabled, user.id == record.userID else {
                    return store.deleteSession(hash: hash).map { nil }
                }
                let active = Active(hash: hash, record: touched ?? record, user: user)
                guard let touched else { return eventLoop.makeSucceededFuture(active) }
                return store.touchSession(hash: hash, record: touched, ttl: ttl).map { active }
            }.nonisolated()
        }.nonisolated()
    }

    /// A new session for `user` and the `Set-Cookie` that hands it to the browser. The value
    /// is always new (never one the browser had before signing in); the browser's previous
    /// session, if any, is deleted.
    package func create(
        for user: UserRecord,
        request: LocalRequest,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<GatewayError.HeaderField> {
        let name = BrowserCookies.sessionName(isTLS: request.isTLS)
        let now = self.clock.unixSeconds()
        let value = PageRandom.token()
        let record = BrowserSessionRecord(
            userID: user.id,
            email: user.email,
            createdAt: now,
            lastSeen: now,
            csrfToken: CSRFCheck.newToken()
        )
        let old = BrowserCookies.value(named: name, in: request.values(of: "Cookie")).map(PageRandom.hash)
        let store = self.store
        let maxAge = self.policy.lifetime
        return store.createSession(
            hash: PageRandom.hash(value),
            record: record,
            ttl: self.policy.ttl(createdAt: now, now: now)
        )
        .assumeIsolated().flatMap { old.map { store.deleteSession(hash: $0) } ?? eventLoop.makeSucceededVoidFuture() }
        .map { BrowserCookies.set(name: name, value: value, maxAge: maxAge, isTLS: request.isTLS) }.nonisolated()
    }

    /// Ends `session` (sign-out); returns the `Set-Cookie` that clears the cookie.
    package func end(_ session: Active, request: LocalRequest) -> EventLoopFuture<GatewayError.HeaderField> {
        self.store.deleteSession(hash: session.hash).map { Self.clearCookie(request) }
    }

    package static func clearCookie(_ request: LocalRequest) -> GatewayError.HeaderField {
        BrowserCookies.clear(name: BrowserCookies.sessionName(isTLS: request.isTLS), isTLS: request.isTLS)
    }
}
