package import GatewayCore
package import GatewayStore
package import Logging
package import NIOCore

/// Asks the process-wide JWKS refresher for an issuer's keys after a token named a `kid`
/// we lack. Returns a future that completes (on the caller's loop) once the refetch is done
/// and the new keys were installed on the caller's loop, or nil when no refetch may start
/// now (rate cap, file-based issuer).
package typealias UnknownKeyRefetch =
    @Sendable (_ issuer: String, _ keyID: String?, _ loop: any EventLoop) -> EventLoopFuture<Void>?

/// JWT access tokens on one event loop: the verifier with this loop's copy of every
/// issuer's keys, a cache of verified tokens keyed by the token itself (never used past
/// `exp`), the revoked token ids, sessions and users this loop has heard of (pub/sub, or the
/// process's own data without Redis), and the deny-list check against the session store on
/// first sight of a token. A cache hit costs at most three dictionary lookups for them (jti,
/// sid, user); the store is asked once per token, in one round trip. Touched only on its
/// event loop.
package final class JWTAuthenticator {
    /// The outcome of checking one token.
    package enum Check {
        case valid(Principal)
        case invalid(JWTFailure)
        /// Waiting on the store (deny list) or a key refetch.
        case pending(EventLoopFuture<Principal>)
    }

    private struct CachedToken {
        var principal: Principal
        var expiresAt: Int64
        var tokenID: String?
        var issuer: String
        var keyID: String?
        var sessionID: String?
        var issuedAt: Int64?
        var isOwn: Bool
    }

    package let verifier: JWTVerifier
    private let eventLoop: any EventLoop
    private let sessions: (any SessionStore)?
    private let refetch: UnknownKeyRefetch?
    private let clock: GatewayClock
    private let logger: Logger
    private let maximumEntries: Int
    private var cache: [ExactToken: CachedToken] = [:]
    /// Insertion order, for eviction when full.
    private var order: [ExactToken] = []
    private var orderStart = 0
    /// Revoked JWT ids and until when they matter (their `exp`).
    private var revoked: [String: Int64] = [:]
    private var lastRevokedSweep: Int64 = 0
    /// Ended sessions (`sid` of our own tokens) and until when they matter.
    private var revokedSessions: [String: Int64] = [:]
    /// Users whose tokens issued up to `issuedUpTo` are dead, and until when that matters.
    private var revokedUsers: [String: (issuedUpTo: Int64, until: Int64)] = [:]
    private var lastSessionSweep: Int64 = 0
    /// Issuer → earliest time this loop asks for another refetch after one was refused.
    private var refetchBackoff: [String: NIODeadline] = [:]
    /// Issuers whose last JWKS refetch from this loop could not reach the provider. A token
    /// with a `kid` we do not know cannot be judged then: it gets a 503, not a 401, until a
    /// refetch answers (an outage is never the caller's fault).
    private var providerUnreachable: Set<String> = []

    package private(set) var cacheHits = 0
    package private(set) var cacheMisses = 0

    package init(
        eventLoop: any EventLoop,
        verifier: JWTVerifier,
        sessions: (any SessionStore)?,
        refetch: UnknownKeyRefetch?,
        maximumEntries: Int,
        logger: Logger,
        clock: GatewayClock
    ) {
        self.eventLoop = eventLoop
        self.verifier = verifier
        self.sessions = sessions
        self.refetch = refetch
        self.maximumEntries = maximumEntries
        self.logger = logger
        self.clock = clock
    }

    /// Marks a token id revoked on this loop (from pub/sub or a local logout).
    package func revoke(tokenID: String, expiresAt: Int64) {
        let now = self.clock.unixSeconds()
        if revoked.count >= 100_000, now != lastRevokedSweep {
            lastRevokedSweep = now
            revoked = revoked.filter { $0.value > now }
        }
        revoked[tokenID] = expiresAt
    }

    /// Refuses every token of ours whose `sid` is `sessionID` on this loop (pub/sub, local).
    package func revoke(sessionID: String, until: Int64) {
        self.sweepSessionRevocations()
        revokedSessions[sessionID] = max(revokedSessions[sessionID] ?? until, until)
    }

    /// Refuses every token of ours for `userID` issued at or before `issuedUpTo`.
    package func revoke(userID: String, issuedUpTo: Int64, until: Int64) {
        self.sweepSessionRevocations()
        let current = revokedUsers[userID]
        revokedUsers[userID] = (max(current?.issuedUpTo ?? issuedUpTo, issuedUpTo), max(current?.until ?? until, until))
    }

    private func sweepSessionRevocations() {
        let now = self.clock.unixSeconds()
        guard revokedSessions.count + revokedUsers.count >= 100_000, now != lastSessionSweep else { return }
        lastSessionSweep = now
        revokedSessions = revokedSessions.filter { $0.value > now }
        revokedUsers = revokedUsers.filter { $0.value.until > now }
    }

    /// Why this loop already knows the token is dead, if it does.
    private func deniedHere(
        tokenID: String?,
        sessionID: String?,
        subject: String,
        issuedAt: Int64?,
        isOwn: Bool,
        trace: DecisionTrace?
    ) -> JWTFailure? {
        if let id = tokenID, revoked[id] != nil {
            trace?.fail("jwt.revocation", "jti \(id) was revoked (heard on this loop)")
            return .revoked
        }
        guard isOwn else { return nil }
        if let sid = sessionID, revokedSessions[sid] != nil {
            trace?.fail("jwt.revocation", "session \(sid) was ended (heard on this loop)")
            return .sessionRevoked
        }
        // A token of ours without `iat` is older than any user revocation.
        if let user = revokedUsers[subject], issuedAt ?? .min <= user.issuedUpTo {
            trace?.fail("jwt.revocation", "the tokens of \(subject) issued up to \(user.issuedUpTo) were revoked")
            return .userRevoked
        }
        return nil
    }

    /// Installs `issuer`'s new key set and forgets tokens verified with a key it no longer
    /// holds: a key withdrawn by its issuer (a compromise, say) stops vouching at once.
    package func installKeys(issuer: String, keys: JSONWebKeySet) {
        verifier.replaceKeys(issuer: issuer, keys: keys)
        let kept = Set(keys.keys.map(\.keyID))
        cache = cache.filter { $0.value.issuer != issuer || kept.contains($0.value.keyID) }
    }

    package func removeAll() {
        cache.removeAll()
        order.removeAll()
        orderStart = 0
    }

    /// - Parameter trace: records each check (explain); nil on the request path.
    package func check(_ token: String, trace: DecisionTrace? = nil) -> Check {
        let now = self.clock.unixSeconds()
        // Keyed by the token's bytes: Swift's seeded hash of them costs a fraction of a
        // SHA-256, and the equality check on a hit is one compare of the bytes.
        let key = ExactToken(token)
        if let cached = cache[key] {
            if now < cached.expiresAt {
                if let failure = self.deniedHere(
                    tokenID: cached.tokenID,
                    sessionID: cached.sessionID,
                    subject: cached.principal.subject,
                    issuedAt: cached.issuedAt,
                    isOwn: cached.isOwn,
                    trace: trace
                ) {
                    return .invalid(failure)
                }
                cacheHits += 1
                trace?.pass(
                    "jwt.cache",
                    "verified earlier on this loop (iss \(cached.issuer), kid \(cached.keyID ?? "-")), valid until exp=\(cached.expiresAt)"
                )
                return .valid(cached.principal)
            }
            // Never answered from the cache past exp: the full check decides (with leeway).
            cache[key] = nil
        }
        cacheMisses += 1
        return self.verify(token, now: now, mayRefetch: true, trace: trace)
    }

    private func verify(
        _ token: String,
        now: Int64,
        mayRefetch: Bool,
        trace: DecisionTrace?
    ) -> Check {
        switch verifier.verify(token, now: now, trace: trace) {
        case .failed(let failure):
            return .invalid(failure)
        case .unknownKey(let issuer, let keyID):
            if mayRefetch, self.providerUnreachable.contains(issuer),
                let until = self.refetchBackoff[issuer], self.clock.now() < until
            {
                trace?.fail(
                    "jwt.key",
                    "no key of \(issuer) has kid \(keyID ?? "(none)") and its JWKS could not be fetched a moment ago"
                )
                return .pending(self.eventLoop.makeFailedFuture(GatewayError.authUnavailable))
            }
            guard mayRefetch, let refetch, refetchBackoff[issuer].map({ self.clock.now() >= $0 }) ?? true,
                let refreshed = refetch(issuer, keyID, eventLoop)
            else {
                trace?.fail(
                    "jwt.key",
                    "no key of \(issuer) has kid \(keyID ?? "(none)") and no JWKS refetch may start now"
                )
                return .invalid(.unknownKey)
            }
            trace?.info(
                "jwt.key",
                "no key of \(issuer) has kid \(keyID ?? "(none)"): the JWKS is fetched again, then the check repeats"
            )
            let future = refreshed.assumeIsolated().flatMapThrowing { () -> Principal in
                throw RetryAfterRefetch()
            }.flatMapError { error -> EventLoopFuture<Principal> in
                let unreachable =
                    switch error {
                    case is RetryAfterRefetch: false
                    // Refused by the rate cap: unreachable only if the last fetch failed.
                    case let refused as JWKSRefresher.RefetchRefused: refused.providerUnreachable
                    default: true
                    }
                if !(error is RetryAfterRefetch) {
                    // No fresh keys: do not queue behind the provider again at once.
                    // A second on the monotonic clock, not the wall clock's whole-second ticks.
                    self.refetchBackoff[issuer] = self.clock.now() + .seconds(1)
                }
                if unreachable {
                    self.providerUnreachable.insert(issuer)
                } else {
                    self.providerUnreachable.remove(issuer)
                }
                switch self.verify(
                    token,
                    now: self.clock.unixSeconds(),
                    mayRefetch: false,
                    trace: trace
                ) {
                case .valid(let principal): return self.eventLoop.makeSucceededFuture(principal)
                case .invalid(.unknownKey) where unreachable:
                    // Perhaps signed with a key the provider published since: not knowable now.
                    return self.eventLoop.makeFailedFuture(GatewayError.authUnavailable)
                case .invalid(let failure): return self.eventLoop.makeFailedFuture(failure)
                case .pending(let future): return future
                }
            }.nonisolated()
            return .pending(future)
        case .verified(let verified):
            if let failure = self.deniedHere(
                tokenID: verified.tokenID,
                sessionID: verified.sessionID,
                subject: verified.principal.subject,
                issuedAt: verified.issuedAt,
                isOwn: verified.isOwn,
                trace: trace
            ) {
                return .invalid(failure)
            }
            if let sessions, verified.tokenID != nil || verified.isOwn {
                // Our own tokens are also checked by session and by user; another issuer's
                // only by `jti` (its `sub` and `sid` are not ours to revoke).
                let sessionID = verified.isOwn ? verified.sessionID : nil
                let userID = verified.isOwn ? verified.principal.subject : nil
                let future = sessions.accessTokenDenial(
                    tokenID: verified.tokenID,
                    sessionID: sessionID,
                    userID: userID
                ).assumeIsolated().flatMapThrowing { denial -> Principal in
                    if denial.tokenIDRevoked, let id = verified.tokenID {
                        trace?.fail("jwt.revocation", "jti \(id) is on the deny list in the session store")
                        self.revoke(tokenID: id, expiresAt: verified.expiresAt)
                        throw JWTFailure.revoked
                    }
                    let until = self.clock.unixSeconds() + AccessTokenDenial.retentionSeconds
                    if denial.sessionRevoked, let sessionID {
                        trace?.fail("jwt.revocation", "session \(sessionID) was ended (session store)")
                        self.revoke(sessionID: sessionID, until: until)
                        throw JWTFailure.sessionRevoked
                    }
                    if let upTo = denial.userRevokedUpTo, let userID {
                        // Remembered either way: the next token of this user is judged here.
                        self.revoke(userID: userID, issuedUpTo: upTo, until: until)
                        if verified.issuedAt ?? .min <= upTo {
                            trace?.fail("jwt.revocation", "the tokens of \(userID) issued up to \(upTo) were revoked")
                            throw JWTFailure.userRevoked
                        }
                    }
                    trace?.pass(
                        "jwt.revocation",
                        verified.isOwn
                            ? "neither its jti, its session nor its user is on the deny list"
                            : "jti \(verified.tokenID ?? "") is not on the deny list"
                    )
                    self.remember(token, verified)
                    return verified.principal
                }.nonisolated()
                return .pending(future)
            }
            trace?.pass(
                "jwt.revocation",
                verified.tokenID == nil
                    ? "no jti: nothing to look up" : "no session store: the deny list is not consulted"
            )
            remember(token, verified)
            return .valid(verified.principal)
        }
    }

    private struct RetryAfterRefetch: Error {}

    private func remember(_ token: String, _ verified: VerifiedToken) {
        // Admitted only within the leeway after exp: not worth caching (and never past exp).
        guard maximumEntries > 0, self.clock.unixSeconds() < verified.expiresAt else { return }
        if cache.count >= maximumEntries {
            // Evict the oldest entries still present (order may hold removed ones).
            while cache.count >= maximumEntries, orderStart < order.count {
                cache[order[orderStart]] = nil
                orderStart += 1
            }
            if orderStart > order.count / 2 {
                order.removeFirst(orderStart)
                orderStart = 0
            }
        }
        cache[ExactToken(token)] = CachedToken(
            principal: verified.principal,
            expiresAt: verified.expiresAt,
            tokenID: verified.tokenID,
            issuer: verified.issuer,
            keyID: verified.keyID,
            sessionID: verified.sessionID,
            issuedAt: verified.issuedAt,
            isOwn: verified.isOwn
        )
        order.append(ExactToken(token))
        // Entries that expired were dropped from the cache but not from `order`: compact
        // so the order list stays within a constant factor of the cache.
        if order.count - orderStart > 2 * maximumEntries + 16 {
            order = order[orderStart...].filter { cache[$0] != nil }
            orderStart = 0
        }
    }

    package var cachedTokens: Int { cache.count }
}
