package import GatewayConfig
package import GatewayCore
package import GatewayCrypto
package import GatewayStore
package import Logging
package import NIOCore

/// Decides, for one event loop, whether a request may pass: the route's requirement (which
/// the proxy's route table chose), the credential in `Authorization`, the principal behind
/// it, and its scopes.
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
    /// The hash of each API key the store vouched for on this loop, by the key itself: a
    /// cache hit then costs a dictionary lookup instead of the checksum and an HMAC. Only
    /// keys found valid enter it (a spray of guesses cannot fill it), bounded like the
    /// cache; an entry never goes wrong (the hash depends on the key and the fixed pepper
    /// only), and what the key is worth is still asked of the cache every time.
    private var validKeyHashes: CacheSpace<ExactToken, String>
    /// HMACs computed for presented keys (a remembered key costs none).
    package private(set) var keyHashesComputed = 0
    private let clock: GatewayClock
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
    /// The budget of failed authentications per client address, for the credentials the
    /// store is asked about (API keys, our opaque access tokens); nil: unlimited.
    package var failureLimit: (any FailedAuthenticationLimit)?
    /// Authentications that failed and were charged to an address's budget.
    package private(set) var failuresCharged = 0
    /// Requests refused with 429 because their address spent its budget (no store lookup).
    package private(set) var failureRefusals = 0

    package init(
        eventLoop: any EventLoop,
        store: any CredentialStore,
        hmac: HMACSHA256,
        cache: CacheSettings,
        logger: Logger,
        clock: GatewayClock,
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
        self.validKeyHashes = CacheSpace(capacity: cache.maxEntries)
        self.logger = logger
        self.clock = clock
    }

    /// A reload's new settings. What this loop has learned (cached credentials, lookups in
    /// flight, the last-use throttle) is kept: a reload during a Redis outage must not turn
    /// keys that work within `stale_grace` into 503s, nor send every key back to Redis. The
    /// pepper and the store cannot change without a restart, so every cached hash still
    /// names the same key.
    /// - Parameters:
    ///   - opaqueTokenIssuer: `[auth.jwt] issuer`, named as the issuer of our opaque tokens.
    ///   - introspection: keep this loop's introspection setup (with its cache), or replace it.
    package func apply(
        cache settings: CacheSettings,
        jwt: JWTAuthenticator?,
        logger: Logger,
        opaqueTokenIssuer: String? = nil,
        introspection: IntrospectionChange = .keep
    ) {
        self.cache.reconfigure(settings)
        self.validKeyHashes.setCapacity(settings.maxEntries)
        self.jwt = jwt
        self.logger = logger
        self.opaqueTokens?.apply(cache: settings, issuer: opaqueTokenIssuer, logger: logger)
        if case .replace(let replacement) = introspection {
            self.introspection = replacement
        }
    }

    /// What a reload does to the introspection of other servers' tokens.
    package enum IntrospectionChange {
        /// The endpoints did not change: the setup and what its cache learned stay.
        case keep
        /// The endpoints changed: this setup (nil: introspection is no longer configured).
        case replace(IntrospectionAuthenticator?)
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

    /// After a switch of Redis primaries: cached keys are checked with the store again
    /// before they are trusted (usable within `stale_grace` meanwhile); opaque tokens are
    /// dropped, as after `invalidateAll`.
    package func revalidateAll() {
        self.cache.expireAll(now: self.clock.now())
        self.opaqueTokens?.removeAll()
    }

    /// Drops every cached credential (after missing revocation messages).
    package func invalidateAll() {
        self.cache.removeAll()
        self.opaqueTokens?.removeAll()
    }

    /// - Parameters:
    ///   - requirement: what the request's route asks for (the caller traces the route).
    ///   - authorization: every `Authorization` header value of the request.
    ///   - queryCarriesToken: the query string has an `access_token` (or similar) parameter.
    ///   - trace: records each check (explain); nil on the request path, which then builds
    ///     no trace data at all. A traced decision writes no last-use time and is never
    ///     counted against a failure budget.
    ///   - client: the client address, whose failed authentications are limited
    ///     (`failureLimit`); nil: not limited.
    package func authorize(
        _ requirement: RouteRequirement,
        authorization: [String],
        queryCarriesToken: Bool,
        trace: DecisionTrace? = nil,
        client: String? = nil
    ) -> Outcome {
        let required: [String]
        switch requirement {
        case .denied:
            return .deny(.routeNotFound)
        case .open:
            return .allow(nil)
        case .scopes(let scopes):
            required = scopes
        }
        if queryCarriesToken {
            trace?.fail(
                "credential.query",
                "the query string carries a token parameter (access_token, api_key, apikey or token)"
            )
            return .deny(.unauthorized("Send the credential in the Authorization header, never in the URL."))
        }
        guard let header = authorization.first else {
            trace?.fail("credential", "no Authorization header")
            return .deny(
                .unauthorized(
                    "This request needs a credential: send Authorization: Bearer <API key>.",
                    credentialPresent: false
                )
            )
        }
        guard authorization.count == 1 else {
            trace?.fail("credential", "\(authorization.count) Authorization headers; exactly one is accepted")
            return .deny(.unauthorized("Send exactly one Authorization header."))
        }
        guard let credential = BearerCredential.parse(header) else {
            trace?.fail("credential", "the Authorization header is not \"Bearer <token68>\"")
            return .deny(.unauthorized("The Authorization header must be \"Bearer <credential>\"."))
        }
        let token = credential.token
        trace?.info(
            "credential.token",
            "sha256 prefix \(Self.tokenFingerprint(token)) (the token itself is never shown)"
        )
        let limited: Limited? =
            if trace == nil, let client, let failureLimit { Limited(limit: failureLimit, client: client) } else { nil }
        guard credential.shape == .apiKey else {
            if credential.shape == .opaqueAccessToken {
                // Ours by its prefix: never sent to another server's introspection.
                guard let opaqueTokens else {
                    trace?.fail(
                        "credential.kind",
                        "opaque access token (dbaudit_at_), but this gateway has no token store"
                    )
                    return .deny(.unauthorized("The credential is not recognised."))
                }
                trace?.pass("credential.kind", "opaque access token of this gateway (dbaudit_at_)")
                return self.decide(
                    self.checkOpaque(token, opaqueTokens, limited: limited, trace: trace),
                    required: required,
                    trace: trace
                )
            }
            if let jwt, credential.shape == .threeParts {
                trace?.pass("credential.kind", "JWT (three base64url parts)")
                return self.authorizeJWT(token, jwt: jwt, required: required, trace: trace)
            }
            if let introspection {
                // Neither an API key, nor a JWT, nor ours: another server's opaque token.
                trace?.pass("credential.kind", "opaque token of another authorization server: introspection")
                return self.decide(introspection.check(token, trace: trace), required: required, trace: trace)
            }
            trace?.fail(
                "credential.kind",
                "not an API key, not a JWT this gateway accepts, not an opaque token it can check"
            )
            return .deny(.unauthorized("The credential is not recognised."))
        }
        trace?.pass(
            "credential.kind",
            "API key (\(token.hasPrefix(APIKeyFormat.testPrefix) ? APIKeyFormat.testPrefix : APIKeyFormat.livePrefix))"
        )
        let hash: String
        if let known = self.validKeyHashes[ExactToken(token)] {
            // Found valid on this loop before: its format and checksum are proven, and its
            // hash cannot have changed (the pepper is fixed until a restart). Whether the
            // key is still good is the cache's and the store's to say, below.
            hash = known
        } else {
            if let problem = APIKeyFormat.problem(with: token) {
                trace?.fail("api_key.format", "format and checksum: \(problem)")
                // A mistyped or guessed key: counted like an unknown one, so a spray of keys
                // with wrong checksums is throttled too.
                return self.failedAtOnce(.unauthorized("The API key is malformed: \(problem)."), limited)
            }
            hash = self.hash(apiKey: token)
            self.keyHashesComputed += 1
        }
        trace?.pass("api_key.format", "length, alphabet and checksum are valid")
        let deadline = self.clock.now()
        let stale: Principal?
        switch self.cache.lookup(hash, now: deadline) {
        case .fresh(let principal):
            trace?.info("api_key.cache", "fresh entry in this loop's cache: key \(principal.keyID ?? "?")")
            return self.decide(principal, required: required, trace: trace)
        case .freshNegative:
            trace?.fail("api_key.cache", "this loop cached the key as unknown, revoked or expired (negative_ttl)")
            return self.failedAtOnce(.unauthorized("The API key is unknown, revoked or expired."), limited)
        case .stale(let principal):
            trace?.info("api_key.cache", "stale entry (used only if the store cannot answer)")
            stale = principal
        case .miss:
            trace?.info("api_key.cache", "not cached: the store is asked")
            stale = nil
        }
        // A key this loop knew good (stale) is looked up whatever its address did; any
        // other is refused before the lookup once its address spent its budget.
        let admitted = stale == nil ? limited : nil
        if let admitted, let refusal = admitted.limit.admit(client: admitted.client, lookup: true) {
            self.failureRefusals += 1
            return .deny(refusal)
        }
        let lookup = self.lookUp(hash: hash)
        // One promise and one callback per lookup rather than a chain of derived futures:
        // the answer is judged in one step on the loop.
        let promise = lookup.eventLoop.makePromise(of: Principal.self)
        lookup.assumeIsolated().whenComplete { result in
            if let admitted {
                admitted.limit.lookupFinished(client: admitted.client)
            }
            do {
                let principal = try self.judge(
                    result,
                    token: token,
                    hash: hash,
                    stale: stale,
                    limited: limited,
                    trace: trace
                )
                promise.assumeIsolated().succeed(try Self.checkScopes(principal, required: required, trace: trace))
            } catch {
                promise.fail(error)
            }
        }
        return .pending(promise.futureResult)
    }

    /// The principal behind a store's answer about key `hash`, or the refusal: unknown,
    /// revoked, expired or unreadable keys are 401s (cached as unknown and charged to the
    /// failure budget); a store that cannot answer leaves the stale entry, within its grace
    /// and its key's expiry, or a 503.
    private func judge(
        _ result: Result<APIKeyRecord?, any Error>,
        token: String,
        hash: String,
        stale: Principal?,
        limited: Limited?,
        trace: DecisionTrace?
    ) throws(GatewayError) -> Principal {
        let record: APIKeyRecord?
        switch result {
        case .success(let found):
            record = found
        case .failure(let error):
            if case CredentialStoreError.corrupt(let reason) = error {
                // Not what the gateway wrote: treated as absent (401), and said loudly.
                self.logger.error("unreadable API key record in the store", metadata: ["reason": "\(reason)"])
                record = nil
            } else if let stale {
                // The store cannot answer: a cached key keeps working within its grace,
                // which covers the outage, never the key's own expiry.
                trace?.info("api_key.lookup", "the store cannot answer: the stale cached entry is used (stale_grace)")
                if let expiresAt = stale.expiresAt, self.clock.unixSeconds() >= expiresAt {
                    trace?.fail("api_key.expiry", "the stale entry's key expired at \(expiresAt)")
                    throw GatewayError.unauthorized("The API key is unknown, revoked or expired.")
                }
                return stale
            } else {
                trace?.fail("api_key.lookup", "the credential store cannot answer and the key is not cached")
                throw GatewayError.authUnavailable
            }
        }
        let now = self.clock.unixSeconds()
        if let trace {
            Self.describe(record, hash: hash, now: now, into: trace)
        }
        guard let record, record.isUsable(at: now) else {
            self.cache.storeNegative(hash, now: self.clock.now())
            self.charge(limited)
            throw GatewayError.unauthorized("The API key is unknown, revoked or expired.")
        }
        // Whatever store answered, scopes that are not scope tokens never authorize and
        // never travel upstream: the record is treated as unreadable.
        guard ScopeToken.areValid(record.scopes) else {
            self.logger.error(
                "unreadable API key record in the store",
                metadata: ["reason": "scopes are not all scope tokens"]
            )
            trace?.fail("api_key.record", "the record's scopes are not all scope tokens: treated as unreadable")
            self.cache.storeNegative(hash, now: self.clock.now())
            self.charge(limited)
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
        self.cache.storePositive(hash, principal, now: self.clock.now())
        if self.validKeyHashes[ExactToken(token)] == nil {
            self.validKeyHashes.insert(ExactToken(token), hash)
        }
        if trace == nil {
            self.touch(keyID: record.id, now: now)
        }
        return principal
    }

    /// The failure budget of one request's client address.
    private struct Limited {
        let limit: any FailedAuthenticationLimit
        let client: String
    }

    /// A refusal known without the store (malformed, cached as unknown): a 429 instead once
    /// the address spent its budget, else the 401, charged to the budget.
    private func failedAtOnce(_ error: GatewayError, _ limited: Limited?) -> Outcome {
        guard let limited else { return .deny(error) }
        if let refusal = limited.limit.admit(client: limited.client, lookup: false) {
            self.failureRefusals += 1
            return .deny(refusal)
        }
        self.charge(limited)
        return .deny(error)
    }

    /// Our opaque access tokens (`dbaudit_at_…`) also cost a store lookup when not cached:
    /// the same budget applies to those not cached as valid, and every 401 is charged.
    private func checkOpaque(
        _ token: String,
        _ tokens: OpaqueTokenAuthenticator,
        limited: Limited?,
        trace: DecisionTrace?
    ) -> TokenCheck {
        guard let limited, !tokens.isCachedValid(token) else { return tokens.check(token, trace: trace) }
        if let refusal = limited.limit.admit(client: limited.client, lookup: true) {
            self.failureRefusals += 1
            return .invalid(refusal)
        }
        let check = tokens.check(token, trace: trace)
        switch check {
        case .valid:
            limited.limit.lookupFinished(client: limited.client)
        case .invalid(let error):
            limited.limit.lookupFinished(client: limited.client)
            if error.status == 401 { self.charge(limited) }
        case .pending(let future):
            future.assumeIsolated().whenComplete { result in
                limited.limit.lookupFinished(client: limited.client)
                if case .failure(let error as GatewayError) = result, error.status == 401 {
                    self.charge(limited)
                }
            }
        }
        return check
    }

    private func charge(_ limited: Limited?) {
        guard let limited else { return }
        self.failuresCharged += 1
        limited.limit.failed(client: limited.client)
    }

    /// The scope rule, shared by every credential kind: each required scope must be granted
    /// (`admin` grants all).
    private static func checkScopes(
        _ principal: Principal,
        required: [String],
        trace: DecisionTrace?
    ) throws(GatewayError) -> Principal {
        if let trace {
            trace.info(
                "principal",
                "\(principal.kind.rawValue) \(principal.subject)\(principal.clientID.map { " client_id=\($0)" } ?? "")\(principal.keyID.map { " key=\($0)" } ?? ""); scopes: \(principal.scopes.isEmpty ? "(none)" : principal.scopes.joined(separator: " "))"
            )
        }
        if let missing = principal.missingScope(of: required) {
            trace?.fail(
                "scopes",
                "the principal lacks the \(missing) scope (required: \(required.joined(separator: " ")))"
            )
            throw GatewayError.insufficientScope(missing)
        }
        trace?.pass(
            "scopes",
            required.isEmpty
                ? "no scope required" : "every required scope is granted: \(required.joined(separator: " "))"
        )
        return principal
    }

    private func authorizeJWT(
        _ token: String,
        jwt: JWTAuthenticator,
        required: [String],
        trace: DecisionTrace?
    ) -> Outcome {
        switch jwt.check(token, trace: trace) {
        case .valid(let principal):
            // Expiry (with leeway) was the JWT layer's to judge; only scopes remain.
            do {
                return .allow(try Self.checkScopes(principal, required: required, trace: trace))
            } catch {
                return .deny(error)
            }
        case .invalid(let failure):
            return .deny(.unauthorized(failure.description))
        case .pending(let future):
            return .pending(Self.scoped(future, required: required, trace: trace, jwtFailures: true))
        }
    }

    /// The scope decision on a token check (expiry was the checker's to judge).
    private func decide(_ check: TokenCheck, required: [String], trace: DecisionTrace?) -> Outcome {
        switch check {
        case .valid(let principal):
            do {
                return .allow(try Self.checkScopes(principal, required: required, trace: trace))
            } catch {
                return .deny(error)
            }
        case .invalid(let error):
            return .deny(error)
        case .pending(let future):
            return .pending(Self.scoped(future, required: required, trace: trace, jwtFailures: false))
        }
    }

    /// `future`'s principal under the scope rule, through one promise and one callback on
    /// the loop (rather than a future per step). A failure that is not a `GatewayError`
    /// is a 503, except a `JWTFailure` (when `jwtFailures`), which is the token's own 401.
    private static func scoped(
        _ future: EventLoopFuture<Principal>,
        required: [String],
        trace: DecisionTrace?,
        jwtFailures: Bool
    ) -> EventLoopFuture<Principal> {
        let promise = future.eventLoop.makePromise(of: Principal.self)
        future.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let principal):
                do {
                    promise.assumeIsolated().succeed(try Self.checkScopes(principal, required: required, trace: trace))
                } catch {
                    promise.fail(error)
                }
            case .failure(let failure as JWTFailure) where jwtFailures:
                promise.fail(GatewayError.unauthorized(failure.description))
            case .failure(let error as GatewayError):
                promise.fail(error)
            case .failure:
                promise.fail(GatewayError.authUnavailable)
            }
        }
        return promise.futureResult
    }

    /// An explained API key lookup: the record's id, owner, scopes, expiry and revocation,
    /// never its hash in full.
    private static func describe(_ record: APIKeyRecord?, hash: String, now: Int64, into trace: DecisionTrace) {
        guard let record else {
            trace.fail("api_key.lookup", "no record for hash \(hash.prefix(12))…: the key is unknown (or was deleted)")
            return
        }
        trace.pass(
            "api_key.lookup",
            "record \(record.id) (\(record.environment)) owner=\(record.owner) scopes=\(record.scopes.isEmpty ? "(none)" : record.scopes.joined(separator: " "))\(record.rateLimit.map { " rate_limit=\($0)" } ?? "")"
        )
        if record.revoked {
            trace.fail("api_key.revocation", "the key is revoked")
        } else {
            trace.pass("api_key.revocation", "not revoked")
        }
        if let expiresAt = record.expiresAt {
            if now >= expiresAt {
                trace.fail("api_key.expiry", "expires_at=\(expiresAt) <= now=\(now): expired")
            } else {
                trace.pass("api_key.expiry", "expires_at=\(expiresAt) > now=\(now)")
            }
        } else {
            trace.pass("api_key.expiry", "no expiry")
        }
    }

    /// What explain shows instead of a token: the first 12 hex digits of its SHA-256.
    package static func tokenFingerprint(_ token: String) -> String {
        String(Digest.sha256.hexHash(token.utf8).prefix(12))
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
                metadata: ["error": "\(error)"]
            )
        }
    }

    private func decide(_ principal: Principal, required: [String], trace: DecisionTrace?) -> Outcome {
        if let expiresAt = principal.expiresAt, self.clock.unixSeconds() >= expiresAt {
            trace?.fail("api_key.expiry", "the cached key expired at \(expiresAt)")
            return .deny(
                .unauthorized(
                    principal.kind == .apiKey ? "The API key is unknown, revoked or expired." : "The token has expired."
                )
            )
        }
        let allowed: Principal
        do {
            allowed = try Self.checkScopes(principal, required: required, trace: trace)
        } catch {
            return .deny(error)
        }
        if trace == nil, let keyID = allowed.keyID {
            self.touch(keyID: keyID, now: self.clock.unixSeconds())
        }
        return .allow(allowed)
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
    package static func bearerToken(_ header: String) -> String? {
        BearerCredential.parse(header)?.token
    }
}
