package import GatewayConfig
package import GatewayCore
package import GatewayStore
package import Logging
package import NIOCore

/// The outcome of checking one bearer token that is neither an API key nor a JWT.
package enum TokenCheck {
    case valid(Principal)
    case invalid(GatewayError)
    /// Waiting for a store or an introspection endpoint; fails with a `GatewayError`.
    case pending(EventLoopFuture<Principal>)
}

/// Opaque OAuth access tokens (`dbaudit_at_…`) on one event loop: the store lookup by the
/// token's SHA-256, this loop's cache in front of it (the `[cache]` rules of API keys:
/// positive entries for `positive_ttl`, a stale one keeps working through an outage for
/// `stale_grace`, unknown tokens cached for `negative_ttl`, never past the token's own
/// expiry), one lookup per token in flight, and revocations heard over pub/sub. Touched
/// only on its event loop.
package final class OpaqueTokenAuthenticator {
    private let store: any OpaqueAccessTokenStore
    private let cache: CredentialCache
    private var issuer: String?
    private let clock: GatewayClock
    private var logger: Logger
    /// The store failed its last lookup: logged once, not again until it answers.
    private var storeDown = false
    private var lookupsInFlight: [String: EventLoopFuture<OpaqueAccessTokenRecord?>] = [:]
    /// Bumped by every revocation: a lookup that a revocation overtook does not cache what
    /// it read (the record may be the one just deleted).
    private var generation: UInt64 = 0

    package static let refusal = "The access token is unknown, revoked or expired."

    package init(
        store: any OpaqueAccessTokenStore,
        cache: CacheSettings,
        issuer: String?,
        logger: Logger,
        clock: GatewayClock
    ) {
        self.store = store
        self.cache = CredentialCache(cache)
        self.issuer = issuer
        self.logger = logger
        self.clock = clock
    }

    package var cacheHits: Int { self.cache.hits }
    package var cacheMisses: Int { self.cache.misses }
    package var cachedTokens: Int { self.cache.count }

    /// A reload's settings. Cached tokens are kept (a reload during a Redis outage must not
    /// turn tokens that work within `stale_grace` into 503s) unless the issuer they name
    /// changed.
    package func apply(cache settings: CacheSettings, issuer: String?, logger: Logger) {
        self.cache.reconfigure(settings)
        self.logger = logger
        if issuer != self.issuer {
            self.issuer = issuer
            self.removeAll()
        }
    }

    /// Whether this loop's cache knows `token` as valid (fresh or stale), so the failure
    /// budget of its sender does not apply.
    package func isCachedValid(_ token: String) -> Bool {
        guard OpaqueAccessTokenFormat.isWellFormed(token) else { return false }
        return self.cache.holdsValid(OpaqueAccessTokenFormat.hash(token), now: self.clock.now())
    }

    /// Drops a revoked token from this loop's cache.
    package func invalidate(hash: String) {
        self.generation &+= 1
        self.cache.remove(hash)
    }

    package func removeAll() {
        self.generation &+= 1
        self.cache.removeAll()
    }

    /// - Parameter trace: records each check (explain); nil on the request path.
    package func check(_ token: String, trace: DecisionTrace? = nil) -> TokenCheck {
        guard OpaqueAccessTokenFormat.isWellFormed(token) else {
            trace?.fail("opaque.format", "not a well-formed dbaudit_at_ token")
            return .invalid(.unauthorized("The access token is malformed."))
        }
        trace?.pass("opaque.format", "well-formed dbaudit_at_ token")
        let hash = OpaqueAccessTokenFormat.hash(token)
        let stale: Principal?
        switch self.cache.lookup(hash, now: self.clock.now()) {
        case .fresh(let principal):
            // The cache entry may outlive the token: its expiry always wins.
            guard let expiresAt = principal.expiresAt, self.clock.unixSeconds() < expiresAt else {
                trace?.fail("opaque.expiry", "cached token expired at \(principal.expiresAt.map(String.init) ?? "?")")
                self.cache.remove(hash)
                return .invalid(.unauthorized(Self.refusal))
            }
            trace?.pass("opaque.cache", "fresh entry in this loop's cache; expires_at=\(expiresAt)")
            return .valid(principal)
        case .freshNegative:
            trace?.fail("opaque.cache", "this loop cached the token as unknown, revoked or expired (negative_ttl)")
            return .invalid(.unauthorized(Self.refusal))
        case .stale(let principal):
            guard let expiresAt = principal.expiresAt, self.clock.unixSeconds() < expiresAt else {
                trace?.fail("opaque.expiry", "cached token expired at \(principal.expiresAt.map(String.init) ?? "?")")
                self.cache.remove(hash)
                return .invalid(.unauthorized(Self.refusal))
            }
            trace?.info("opaque.cache", "stale entry (used only if the store cannot answer)")
            stale = principal
        case .miss:
            trace?.info("opaque.cache", "not cached: the store is asked")
            stale = nil
        }
        let generation = self.generation
        let future = self.lookUp(hash: hash).assumeIsolated().flatMapErrorThrowing {
            error -> OpaqueAccessTokenRecord? in
            if case CredentialStoreError.corrupt(let reason) = error {
                // Not what the gateway wrote: treated as absent (401), and said loudly.
                self.logger.error(
                    "unreadable opaque access token record in the store",
                    metadata: ["reason": "\(reason)"]
                )
                return nil
            }
            if let stale {
                // The store cannot answer: a cached token keeps working within the grace,
                // never past its own expiry.
                trace?.info("opaque.lookup", "the store cannot answer: the stale cached entry is used (stale_grace)")
                throw StaleFallback(principal: stale)
            }
            trace?.fail("opaque.lookup", "the credential store cannot answer and the token is not cached")
            throw GatewayError.authUnavailable
        }.flatMapThrowing { record -> Principal in
            if let trace {
                if let record {
                    trace.pass(
                        "opaque.lookup",
                        "record: client_id=\(record.clientID) subject=\(record.subject) scopes=\(record.scopes.joined(separator: " "))"
                    )
                    let now = self.clock.unixSeconds()
                    if record.isUsable(at: now) {
                        trace.pass("opaque.expiry", "expires_at=\(record.expiresAt) > now=\(now)")
                    } else {
                        trace.fail("opaque.expiry", "expires_at=\(record.expiresAt) <= now=\(now): expired")
                    }
                } else {
                    trace.fail("opaque.lookup", "no record: the token is unknown, revoked or expired")
                }
            }
            guard let record, record.isUsable(at: self.clock.unixSeconds()) else {
                self.cache.storeNegative(hash, now: self.clock.now())
                throw GatewayError.unauthorized(Self.refusal)
            }
            var principal = Principal(
                subject: record.subject,
                kind: .oauth,
                scopes: record.scopes,
                clientID: record.clientID,
                expiresAt: record.expiresAt
            )
            principal.issuer = self.issuer
            if generation == self.generation {
                self.cache.storePositive(hash, principal, now: self.clock.now())
            }
            return principal
        }.flatMapErrorThrowing { error -> Principal in
            guard let fallback = error as? StaleFallback else { throw error }
            // The token may have expired while the store was being asked.
            guard let expiresAt = fallback.principal.expiresAt, self.clock.unixSeconds() < expiresAt else {
                throw GatewayError.unauthorized(Self.refusal)
            }
            return fallback.principal
        }.nonisolated()
        return .pending(future)
    }

    private struct StaleFallback: Error {
        let principal: Principal
    }

    /// One store lookup per token at a time on this loop (a burst of requests with a token
    /// this loop has not seen waits for one answer).
    private func lookUp(hash: String) -> EventLoopFuture<OpaqueAccessTokenRecord?> {
        if let pending = self.lookupsInFlight[hash] { return pending }
        let future = self.store.opaqueAccessToken(hash: hash)
        self.lookupsInFlight[hash] = future
        future.assumeIsolated().whenComplete { result in
            self.lookupsInFlight[hash] = nil
            self.noteStoreAnswer(result)
        }
        return future
    }

    /// Logs the start and the end of a store outage, once each (a flood of 503s must not
    /// become a flood of log lines).
    private func noteStoreAnswer(_ result: Result<OpaqueAccessTokenRecord?, any Error>) {
        switch result {
        case .success, .failure(CredentialStoreError.corrupt):
            guard self.storeDown else { return }
            self.storeDown = false
            self.logger.notice("credential store answers again (opaque access tokens)")
        case .failure(let error):
            guard !self.storeDown else { return }
            self.storeDown = true
            self.logger.warning(
                "credential store unavailable; opaque access tokens not cached (or past stale_grace) get 503 until it answers again",
                metadata: ["error": "\(error)"]
            )
        }
    }
}
