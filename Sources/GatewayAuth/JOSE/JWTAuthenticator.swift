package import GatewayCore
import GatewayCrypto
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
/// issuer's keys, a cache of verified tokens keyed by SHA-256 of the token (never used past
/// `exp`), the revoked token ids this loop has heard of, and the deny-list check against the
/// session store on first sight of a token. Touched only on its event loop.
package final class JWTAuthenticator {
    /// The outcome of checking one token.
    package enum Check {
        case valid(Principal)
        case invalid(JWTFailure)
        /// Waiting on the store (deny list) or a key refetch.
        case pending(EventLoopFuture<Principal>)
    }

    private struct TokenDigest: Hashable {
        var a: UInt64, b: UInt64, c: UInt64, d: UInt64
        init(_ bytes: [UInt8]) {
            func word(_ offset: Int) -> UInt64 {
                var value: UInt64 = 0
                for index in offset..<(offset + 8) { value = value << 8 | UInt64(bytes[index]) }
                return value
            }
            (a, b, c, d) = (word(0), word(8), word(16), word(24))
        }
    }

    private struct CachedToken {
        var principal: Principal
        var expiresAt: Int64
        var tokenID: String?
        var issuer: String
        var keyID: String?
    }

    package let verifier: JWTVerifier
    private let eventLoop: any EventLoop
    private let sessions: (any SessionStore)?
    private let refetch: UnknownKeyRefetch?
    private let clock: GatewayClock
    private let logger: Logger
    private let maximumEntries: Int
    private var cache: [TokenDigest: CachedToken] = [:]
    /// Insertion order, for eviction when full.
    private var order: [TokenDigest] = []
    private var orderStart = 0
    /// Revoked JWT ids and until when they matter (their `exp`).
    private var revoked: [String: Int64] = [:]
    private var lastRevokedSweep: Int64 = 0
    /// Issuer → earliest time this loop asks for another refetch after one was refused.
    private var refetchBackoff: [String: NIODeadline] = [:]

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
        let digest = TokenDigest(Digest.sha256.hash(token.utf8))
        if let cached = cache[digest] {
            if now < cached.expiresAt {
                if let id = cached.tokenID, revoked[id] != nil {
                    trace?.fail("jwt.revocation", "jti \(id) was revoked (heard on this loop)")
                    return .invalid(.revoked)
                }
                cacheHits += 1
                trace?.pass(
                    "jwt.cache",
                    "verified earlier on this loop (iss \(cached.issuer), kid \(cached.keyID ?? "-")), valid until exp=\(cached.expiresAt)"
                )
                return .valid(cached.principal)
            }
            // Never answered from the cache past exp: the full check decides (with leeway).
            cache[digest] = nil
        }
        cacheMisses += 1
        return self.verify(token, digest: digest, now: now, mayRefetch: true, trace: trace)
    }

    private func verify(
        _ token: String,
        digest: TokenDigest,
        now: Int64,
        mayRefetch: Bool,
        trace: DecisionTrace?
    ) -> Check {
        switch verifier.verify(token, now: now, trace: trace) {
        case .failed(let failure):
            return .invalid(failure)
        case .unknownKey(let issuer, let keyID):
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
                if !(error is RetryAfterRefetch) {
                    // The provider could not be reached: do not queue behind it again at once.
                    // A second on the monotonic clock, not the wall clock's whole-second ticks.
                    self.refetchBackoff[issuer] = self.clock.now() + .seconds(1)
                }
                switch self.verify(
                    token,
                    digest: digest,
                    now: self.clock.unixSeconds(),
                    mayRefetch: false,
                    trace: trace
                ) {
                case .valid(let principal): return self.eventLoop.makeSucceededFuture(principal)
                case .invalid(let failure): return self.eventLoop.makeFailedFuture(failure)
                case .pending(let future): return future
                }
            }.nonisolated()
            return .pending(future)
        case .verified(let verified):
            if let id = verified.tokenID {
                if revoked[id] != nil {
                    trace?.fail("jwt.revocation", "jti \(id) was revoked (heard on this loop)")
                    return .invalid(.revoked)
                }
                if let sessions {
                    let future = sessions.isTokenIDRevoked(id).assumeIsolated().flatMapThrowing {
                        isRevoked -> Principal in
                        if isRevoked {
                            trace?.fail("jwt.revocation", "jti \(id) is on the deny list in the session store")
                            self.revoke(tokenID: id, expiresAt: verified.expiresAt)
                            throw JWTFailure.revoked
                        }
                        trace?.pass("jwt.revocation", "jti \(id) is not on the deny list")
                        self.remember(digest, verified)
                        return verified.principal
                    }.nonisolated()
                    return .pending(future)
                }
            }
            trace?.pass(
                "jwt.revocation",
                verified.tokenID == nil
                    ? "no jti: nothing to look up" : "no session store: the deny list is not consulted"
            )
            remember(digest, verified)
            return .valid(verified.principal)
        }
    }

    private struct RetryAfterRefetch: Error {}

    private func remember(_ digest: TokenDigest, _ verified: VerifiedToken) {
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
        cache[digest] = CachedToken(
            principal: verified.principal,
            expiresAt: verified.expiresAt,
            tokenID: verified.tokenID,
            issuer: verified.issuer,
            keyID: verified.keyID
        )
        order.append(digest)
        // Entries that expired were dropped from the cache but not from `order`: compact
        // so the order list stays within a constant factor of the cache.
        if order.count - orderStart > 2 * maximumEntries + 16 {
            order = order[orderStart...].filter { cache[$0] != nil }
            orderStart = 0
        }
    }

    package var cachedTokens: Int { cache.count }
}
