package import GatewayConfig
package import GatewayCore
package import GatewayCrypto
package import GatewayStore
package import Logging
package import NIOCore

/// Decides, for one event loop, whether a request may pass: the route's requirement, the
/// credential in `Authorization`, the principal behind it, and its scopes.
///
/// Cache hits and every refusal that needs no store (malformed header, bad checksum,
/// default-deny) are answered synchronously; only a cache miss waits on the store. An
/// unreachable store is a 503, never a 401; a cached credential outlives an outage only
/// within `stale_grace`. Touched only on its event loop.
package final class Authenticator {
    /// The decision for one request.
    package enum Outcome {
        /// Pass; the principal is nil on open routes.
        case allow(Principal?)
        case deny(GatewayError)
        /// Waiting for the store; the future fails with a `GatewayError`.
        case pending(EventLoopFuture<Principal>)
    }

    package let eventLoop: any EventLoop
    package let store: any CredentialStore
    private let hmac: HMACSHA256Context
    private let cache: CredentialCache
    /// The route table this loop matches requests against.
    package private(set) var routes: RouteTable
    private let now: () -> Int64
    private var logger: Logger
    private var lastTouched: [String: Int64] = [:]
    private var lookupsInFlight: [String: EventLoopFuture<APIKeyRecord?>] = [:]
    /// The store failed its last lookup: the outage was logged and is not logged again
    /// until the store answers (a flood of 503s must not become a flood of log lines).
    private var storeDown = false
    /// Cache misses that joined a lookup already in flight (no store call of their own).
    package private(set) var coalescedLookups = 0
    private var lastTouchSweep: Int64 = 0
    /// Keys whose last use this loop remembers (and so writes at most once a minute).
    private let maximumTrackedKeys: Int
    /// JWT access tokens (own and external issuers); nil when none are configured.
    package private(set) var jwt: JWTAuthenticator?
    /// Opaque OAuth access tokens of ours (`dbaudit_at_…`); nil without a token store.
    package let opaqueTokens: OpaqueTokenAuthenticator?
    /// Opaque tokens of other authorization servers; nil without
    /// `[[auth.oauth.introspection]]`.
    package private(set) var introspection: IntrospectionAuthenticator?

    package init(
        eventLoop: any EventLoop,
        store: any CredentialStore,
        hmac: HMACSHA256,
        cache: CacheSettings,
        routes: RouteTable,
        logger: Logger,
        now: @escaping () -> Int64,
        maximumTrackedKeys: Int = 100_000,
        jwt: JWTAuthenticator? = nil,
        opaqueTokens: OpaqueTokenAuthenticator? = nil,
        introspection: IntrospectionAuthenticator? = nil
    ) {
        self.introspection = introspection
        self.maximumTrackedKeys = maximumTrackedKeys
        self.jwt = jwt
        self.opaqueTokens = opaqueTokens
        self.eventLoop = eventLoop
        self.store = store
        self.hmac = hmac.makeContext()
        self.cache = CredentialCache(cache)
        self.routes = routes
        self.logger = logger
        self.now = now
    }

    /// A reload's new settings. What this loop has learned (cached credentials, lookups in
    /// flight, the last-use throttle) is kept: a reload during a Redis outage must not turn
    /// keys that work within `stale_grace` into 503s, nor send every key back to Redis. The
    /// pepper and the store cannot change without a restart, so every cached hash still
    /// names the same key.
    /// - Parameters:
    ///   - opaqueTokenIssuer: `[auth.jwt] issuer`, named as the issuer of our opaque tokens.
    ///   - introspection: a new introspection setup (`.some(nil)`: none any more); nil keeps
    ///     this loop's, with its cache.
    package func apply(
        cache settings: CacheSettings,
        routes: RouteTable,
        jwt: JWTAuthenticator?,
        logger: Logger,
        opaqueTokenIssuer: String? = nil,
        introspection: IntrospectionAuthenticator?? = nil
    ) {
        self.cache.reconfigure(settings)
        self.routes = routes
        self.jwt = jwt
        self.logger = logger
        self.opaqueTokens?.apply(cache: settings, issuer: opaqueTokenIssuer, logger: logger)
        if let introspection {
            self.introspection = introspection
        }
    }

    package var cacheHits: Int { self.cache.hits }
    package var cacheMisses: Int { self.cache.misses }

    /// The stored hash of an API key.
    package func hash(apiKey: String) -> String {
        self.hmac.hexAuthenticationCode(for: apiKey)
    }

    /// Drops a revoked key from this loop's cache.
    package func invalidate(apiKeyHash: String) {
        self.cache.remove(apiKeyHash)
    }

    /// Drops a revoked opaque access token from this loop's cache.
    package func invalidate(opaqueAccessTokenHash hash: String) {
        self.opaqueTokens?.invalidate(hash: hash)
    }

    /// Drops every cached credential (after missing revocation messages).
    package func invalidateAll() {
        self.cache.removeAll()
        self.opaqueTokens?.removeAll()
    }

    /// - Parameters:
    ///   - authorization: every `Authorization` header value of the request.
    ///   - queryCarriesToken: the query string has an `access_token` (or similar) parameter.
    ///   - requirement: overrides the route table (built-in endpoints).
    package func authorize(
        method: String,
        normalizedPath: String,
        authorization: [String],
        queryCarriesToken: Bool,
        requirement: RouteTable.Requirement? = nil
    ) -> Outcome {
        let required: [String]
        switch requirement ?? self.routes.requirement(method: method, normalizedPath: normalizedPath) {
        case .denied:
            return .deny(.routeNotFound)
        case .open:
            return .allow(nil)
        case .scopes(let scopes):
            required = scopes
        }
        if queryCarriesToken {
            return .deny(.unauthorized("Send the credential in the Authorization header, never in the URL."))
        }
        guard let header = authorization.first else {
            return .deny(.unauthorized("This request needs a credential: send Authorization: Bearer <API key>.", credentialPresent: false))
        }
        guard authorization.count == 1 else {
            return .deny(.unauthorized("Send exactly one Authorization header."))
        }
        guard let token = Self.bearerToken(header) else {
            return .deny(.unauthorized("The Authorization header must be \"Bearer <credential>\"."))
        }
        guard APIKeyFormat.hasAPIKeyPrefix(token) else {
            if OpaqueAccessTokenFormat.hasPrefix(token) {
                // Ours by its prefix: never sent to another server's introspection.
                guard let opaqueTokens else { return .deny(.unauthorized("The credential is not recognised.")) }
                return self.decide(opaqueTokens.check(token), required: required)
            }
            if let jwt, JWTVerifier.looksLikeJWT(token) {
                return self.authorizeJWT(token, jwt: jwt, required: required)
            }
            if let introspection {
                // Neither an API key, nor a JWT, nor ours: another server's opaque token.
                return self.decide(introspection.check(token), required: required)
            }
            return .deny(.unauthorized("The credential is not recognised."))
        }
        if let problem = APIKeyFormat.problem(with: token) {
            return .deny(.unauthorized("The API key is malformed: \(problem)."))
        }
        let hash = self.hash(apiKey: token)
        let deadline = NIODeadline.now()
        let stale: Principal?
        switch self.cache.lookup(hash, now: deadline) {
        case .fresh(let principal):
            return self.decide(principal, required: required)
        case .freshNegative:
            return .deny(.unauthorized("The API key is unknown, revoked or expired."))
        case .stale(let principal):
            stale = principal
        case .miss:
            stale = nil
        }
        let future = self.lookUp(hash: hash).assumeIsolated().flatMapErrorThrowing { error -> APIKeyRecord? in
            if case CredentialStoreError.corrupt(let reason) = error {
                // Not what the gateway wrote: treated as absent (401), and said loudly.
                self.logger.error("unreadable API key record in the store", metadata: ["reason": "\(reason)"])
                return nil
            }
            // The store cannot answer: a cached key keeps working within its grace.
            if let stale {
                throw StaleFallback(principal: stale)
            }
            throw GatewayError.authUnavailable
        }.flatMapThrowing { record -> Principal in
            let now = self.now()
            guard let record, record.isUsable(at: now) else {
                self.cache.storeNegative(hash, now: .now())
                throw GatewayError.unauthorized("The API key is unknown, revoked or expired.")
            }
            // Whatever store answered, scopes that are not scope tokens never authorize and
            // never travel upstream: the record is treated as unreadable.
            guard ScopeToken.areValid(record.scopes) else {
                self.logger.error("unreadable API key record in the store", metadata: ["reason": "scopes are not all scope tokens"])
                self.cache.storeNegative(hash, now: .now())
                throw GatewayError.unauthorized("The API key is unknown, revoked or expired.")
            }
            let principal = Principal(
                subject: record.owner,
                kind: .apiKey,
                scopes: record.scopes,
                keyID: record.id,
                expiresAt: record.expiresAt,
                rateLimit: record.rateLimit
            )
            self.cache.storePositive(hash, principal, now: .now())
            self.touch(keyID: record.id, now: now)
            return principal
        }.flatMapErrorThrowing { error -> Principal in
            guard let fallback = error as? StaleFallback else { throw error }
            // The grace covers the outage, never the key's own expiry.
            if let expiresAt = fallback.principal.expiresAt, self.now() >= expiresAt {
                throw GatewayError.unauthorized("The API key is unknown, revoked or expired.")
            }
            return fallback.principal
        }.flatMapThrowing { principal -> Principal in
            if let missing = principal.missingScope(of: required) {
                throw GatewayError.insufficientScope(missing)
            }
            return principal
        }.nonisolated()
        return .pending(future)
    }

    private func authorizeJWT(_ token: String, jwt: JWTAuthenticator, required: [String]) -> Outcome {
        switch jwt.check(token) {
        case .valid(let principal):
            // Expiry (with leeway) was the JWT layer's to judge; only scopes remain.
            if let missing = principal.missingScope(of: required) {
                return .deny(.insufficientScope(missing))
            }
            return .allow(principal)
        case .invalid(let failure):
            return .deny(.unauthorized(failure.description))
        case .pending(let future):
            return .pending(future.flatMapErrorThrowing { error -> Principal in
                switch error {
                case let failure as JWTFailure: throw GatewayError.unauthorized(failure.description)
                case let error as GatewayError: throw error
                default: throw GatewayError.authUnavailable
                }
            }.flatMapThrowing { principal -> Principal in
                if let missing = principal.missingScope(of: required) {
                    throw GatewayError.insufficientScope(missing)
                }
                return principal
            })
        }
    }

    /// The scope decision on a token check (expiry was the checker's to judge).
    private func decide(_ check: TokenCheck, required: [String]) -> Outcome {
        switch check {
        case .valid(let principal):
            if let missing = principal.missingScope(of: required) {
                return .deny(.insufficientScope(missing))
            }
            return .allow(principal)
        case .invalid(let error):
            return .deny(error)
        case .pending(let future):
            return .pending(future.flatMapErrorThrowing { error -> Principal in
                throw error as? GatewayError ?? GatewayError.authUnavailable
            }.flatMapThrowing { principal -> Principal in
                if let missing = principal.missingScope(of: required) {
                    throw GatewayError.insufficientScope(missing)
                }
                return principal
            })
        }
    }

    /// One store lookup per key hash at a time on this loop: requests that miss the cache
    /// while a lookup for the same key is on its way (a cold start, or every client of a
    /// key whose entry just went stale) wait for that answer instead of each asking Redis.
    private func lookUp(hash: String) -> EventLoopFuture<APIKeyRecord?> {
        if let pending = self.lookupsInFlight[hash] {
            self.coalescedLookups += 1
            return pending
        }
        let future = self.store.apiKey(hash: hash)
        self.lookupsInFlight[hash] = future
        future.assumeIsolated().whenComplete { result in
            self.lookupsInFlight[hash] = nil
            self.noteStoreAnswer(result)
        }
        return future
    }

    /// Logs the start and the end of a store outage, once each.
    private func noteStoreAnswer(_ result: Result<APIKeyRecord?, any Error>) {
        switch result {
        case .success, .failure(CredentialStoreError.corrupt):
            guard self.storeDown else { return }
            self.storeDown = false
            self.logger.notice("credential store answers again")
        case .failure(let error):
            guard !self.storeDown else { return }
            self.storeDown = true
            self.logger.warning(
                "credential store unavailable; keys not cached (or past stale_grace) get 503 until it answers again",
                metadata: ["error": "\(error)"])
        }
    }

    private struct StaleFallback: Error {
        let principal: Principal
    }

    private func decide(_ principal: Principal, required: [String]) -> Outcome {
        if let expiresAt = principal.expiresAt, self.now() >= expiresAt {
            return .deny(.unauthorized(principal.kind == .apiKey ? "The API key is unknown, revoked or expired." : "The token has expired."))
        }
        if let missing = principal.missingScope(of: required) {
            return .deny(.insufficientScope(missing))
        }
        if let keyID = principal.keyID {
            self.touch(keyID: keyID, now: self.now())
        }
        return .allow(principal)
    }

    /// Records a use at most once a minute per key and loop: never a write per request.
    private func touch(keyID: String, now: Int64) {
        if let last = self.lastTouched[keyID], now - last < 60 { return }
        if self.lastTouched.count >= self.maximumTrackedKeys {
            // Entries older than a minute no longer throttle anything. The sweep is O(n),
            // so it runs at most once a second, never per request.
            if now != self.lastTouchSweep {
                self.lastTouchSweep = now
                self.lastTouched = self.lastTouched.filter { now - $0.value < 60 }
            }
            // Still full: more keys than that were used this minute. Skip the write rather
            // than forget the throttle, so a flood of distinct keys never becomes a write
            // per request.
            if self.lastTouched.count >= self.maximumTrackedKeys { return }
        }
        self.lastTouched[keyID] = now
        self.store.touchAPIKey(id: keyID, at: now).whenFailure { _ in }
    }

    /// `Bearer <token68>` (scheme case-insensitive, RFC 6750 §2.1).
    static func bearerToken(_ header: String) -> String? {
        let bytes = Array(header.utf8)
        guard bytes.count > 7, bytes.count <= 8192 else { return nil }
        let scheme = bytes[0..<6].map { $0 | 0x20 }
        guard scheme == Array("bearer".utf8), bytes[6] == UInt8(ascii: " ") else { return nil }
        var start = 7
        while start < bytes.count, bytes[start] == UInt8(ascii: " ") { start += 1 }
        let token = bytes[start...]
        guard !token.isEmpty else { return nil }
        for byte in token {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"), UInt8(ascii: "+"), UInt8(ascii: "/"), UInt8(ascii: "="):
                continue
            default:
                return nil
            }
        }
        return String(decoding: token, as: UTF8.self)
    }
}
