package import GatewayAuth
package import GatewayConfig
package import GatewayCore
package import GatewayCrypto
package import GatewayRateLimit
package import GatewayStore
import GatewayTLS
package import Logging
package import NIOCore

/// Everything one event loop needs to serve requests: the configuration snapshot in
/// force, the TLS contexts, the upstream pool, the loggers.
///
/// One per event loop, created at start-up. It is touched only on its own loop, which is
/// what lets the request path run without locks: a reload does not mutate shared state,
/// it asks each loop to `apply` the new snapshot there. Requests already in flight keep
/// the snapshot and pool they started with.
package final class LoopContext {
    package let eventLoop: any EventLoop
    package private(set) var configuration: GatewayConfiguration
    private(set) var pool: UpstreamPool
    private let connector: UpstreamConnector
    package private(set) var logger: Logger
    package private(set) var accessLog: AccessLog
    /// Counters and histograms of this loop (read by the admin listener).
    package let metrics = LoopMetrics()
    /// `Host` for the upstream, computed once per configuration rather than per request.
    package private(set) var upstreamAuthority: String
    /// The TLS contexts in force: new TLS connections on this loop use these.
    package private(set) var tls: GatewayTLSContexts
    /// `Strict-Transport-Security` for responses on TLS listeners (nil: HSTS off).
    package private(set) var strictTransportSecurity: String?
    /// Client connections currently open on this loop.
    package internal(set) var openClientConnections = 0
    /// `[[routes]]` of the configuration in force: what each request needs.
    package private(set) var routes: RouteTable
    /// Credential and scope decisions for this loop.
    package private(set) var authenticator: Authenticator
    /// `/v1/api-keys`.
    package private(set) var apiKeyEndpoints: APIKeyEndpoints
    package private(set) var store: any CredentialStore
    /// The stores `/v1/api-keys` uses: on a Redis connection of their own, so management
    /// traffic never queues in front of the request path's key lookups.
    private let managementStore: (any CredentialStore)?
    private let managementSessions: (any SessionStore)?
    /// JWT verification on this loop (nil without `[auth.jwt]`); kept across reloads that
    /// leave `[auth.jwt]` alone, so its cache and fetched keys survive.
    package private(set) var jwtAuthenticator: JWTAuthenticator?
    /// Login, refresh, logout, JWKS (nil unless we are an issuer).
    package private(set) var sessionEndpoints: SessionEndpoints?
    /// Builds the endpoints the server installs on this loop (OAuth, browser pages) from the
    /// loop's current state; called again on every reload.
    package typealias LocalEndpointFactory = (LoopContext) -> [any LocalEndpoint]
    /// Endpoints answered on this loop besides the ones above, in match order.
    package private(set) var localEndpoints: [any LocalEndpoint] = []
    private var localEndpointFactory: LocalEndpointFactory?
    private var identity: LoopIdentity?
    /// Token buckets of this loop: Redis-backed when `[redis]` is configured.
    package let rateLimiter: RateLimiter
    /// This loop's session store (users, refresh families, revoked JWT ids), kept for the
    /// process's life so a reload that turns JWTs on finds it.
    package let sessionStore: (any SessionStore)?
    private let hmac: HMACSHA256
    /// Opaque OAuth access tokens (nil without `[redis]`): kept for the process's life,
    /// each authenticator built from it gets a fresh cache.
    private let opaqueTokenStore: (any OpaqueAccessTokenStore)?
    /// Introspection of other servers' tokens (nil: not available, e.g. in unit tests).
    private let introspection: LoopIntrospection?
    /// The gateway's clock (the server's `.system`; a manual one in tests).
    package let clock: GatewayClock

    /// - Parameters:
    ///   - store: this loop's credential store; nil makes a process-local one (tests).
    ///   - hmac: the API-key hasher (keyed with the pepper); nil makes a random one.
    package init(
        eventLoop: any EventLoop,
        configuration: GatewayConfiguration,
        connector: @escaping UpstreamConnector,
        logger: Logger,
        store: (any CredentialStore)? = nil,
        hmac: HMACSHA256? = nil,
        identity: LoopIdentity? = nil,
        sessionStore: (any SessionStore)? = nil,
        rateLimiter: RateLimiter? = nil,
        tls: GatewayTLSContexts = GatewayTLSContexts(),
        managementStore: (any CredentialStore)? = nil,
        managementSessions: (any SessionStore)? = nil,
        opaqueTokenStore: (any OpaqueAccessTokenStore)? = nil,
        introspection: LoopIntrospection? = nil,
        clock: GatewayClock
    ) {
        self.opaqueTokenStore = opaqueTokenStore
        self.introspection = introspection
        self.managementStore = managementStore
        self.managementSessions = managementSessions
        self.rateLimiter =
            rateLimiter
            ?? RateLimiter(
                eventLoop: eventLoop,
                local: LocalRateLimiter(group: eventLoop, clock: clock),
                redis: nil,
                logger: logger
            )
        self.sessionStore = sessionStore ?? identity?.sessions
        self.eventLoop = eventLoop
        self.configuration = configuration
        self.connector = connector
        self.logger = logger
        self.accessLog = AccessLog(
            logger: logger,
            enabled: configuration.logging.accessLog,
            sampleRate: configuration.logging.accessLogSampleRate
        )
        self.tls = tls
        self.strictTransportSecurity = configuration.server.tls?.strictTransportSecurity
        self.pool = UpstreamPool(
            eventLoop: eventLoop,
            settings: configuration.upstream,
            connector: connector,
            tls: tls.upstream,
            logger: logger,
            clock: clock
        )
        self.upstreamAuthority = configuration.upstream.authority
        self.routes = RouteTable(routes: configuration.routes, unmatched: configuration.server.unmatchedRoutes)
        let store = store ?? InMemoryCredentialStore(eventLoop: eventLoop, data: InMemoryCredentialData())
        let hmac = hmac ?? HMACSHA256(key: SecureRandom.bytes(32))
        self.store = store
        self.hmac = hmac
        self.clock = clock
        self.identity = identity
        self.jwtAuthenticator = Self.makeJWT(identity, eventLoop: eventLoop, logger: logger, clock: clock)
        self.authenticator = Self.makeAuthenticator(
            configuration,
            store: store,
            hmac: hmac,
            logger: logger,
            clock: clock,
            jwt: self.jwtAuthenticator,
            opaqueTokens: opaqueTokenStore,
            introspection: introspection
        )
        self.apiKeyEndpoints = Self.makeEndpoints(
            store: managementStore ?? store,
            sessions: managementSessions ?? self.sessionStore,
            limiter: self.rateLimiter,
            authenticator: self.authenticator,
            configuration: configuration,
            clock: clock
        )
        self.sessionEndpoints = Self.makeSessions(
            identity,
            jwt: self.jwtAuthenticator,
            limiter: self.rateLimiter,
            eventLoop: eventLoop,
            logger: logger,
            clock: clock
        )
    }

    private static func makeJWT(
        _ identity: LoopIdentity?,
        eventLoop: any EventLoop,
        logger: Logger,
        clock: GatewayClock
    ) -> JWTAuthenticator? {
        guard let identity else { return nil }
        return JWTAuthenticator(
            eventLoop: eventLoop,
            verifier: identity.runtime.makeVerifier(),
            sessions: identity.sessions,
            refetch: identity.refetch,
            maximumEntries: identity.runtime.settings.verifiedCacheEntries,
            logger: logger,
            clock: clock
        )
    }

    private static func makeSessions(
        _ identity: LoopIdentity?,
        jwt: JWTAuthenticator?,
        limiter: RateLimiter,
        eventLoop: any EventLoop,
        logger: Logger,
        clock: GatewayClock
    ) -> SessionEndpoints? {
        guard let identity, let issuer = identity.runtime.issuer, let jwt else { return nil }
        let settings = identity.runtime.settings
        let ownPolicy = issuer.policy(
            leewaySeconds: Int64(settings.leeway.components.seconds),
            maxLifetimeSeconds: Int64(settings.maxTokenLifetime.components.seconds)
        )
        let ownKeys = issuer.verificationKeys
        return SessionEndpoints(
            issuer: issuer,
            sessions: identity.sessions,
            throttle: RateLimitedLoginThrottle(limiter: limiter, eventLoop: eventLoop, settings: settings),
            checkPassword: identity.checkPassword,
            passwordCost: settings.passwordHashCost,
            decoyHash: identity.runtime.decoyHash,
            logger: logger,
            clock: clock,
            revokeLocally: { [weak jwt] id, expiresAt in jwt?.revoke(tokenID: id, expiresAt: expiresAt) },
            verifyOwnToken: { token in
                let verifier = JWTVerifier(policies: [ownPolicy], keySets: [ownPolicy.issuer: ownKeys])
                if case .verified(let verified) = verifier.verify(token, now: clock.unixSeconds()) { return verified }
                return nil
            },
            refreshReuseGraceSeconds: Int64(settings.refreshReuseGrace.components.seconds)
        )
    }

    private static func makeAuthenticator(
        _ configuration: GatewayConfiguration,
        store: any CredentialStore,
        hmac: HMACSHA256,
        logger: Logger,
        clock: GatewayClock,
        jwt: JWTAuthenticator?,
        opaqueTokens: (any OpaqueAccessTokenStore)?,
        introspection: LoopIntrospection?
    ) -> Authenticator {
        Authenticator(
            eventLoop: store.eventLoop,
            store: store,
            hmac: hmac,
            cache: configuration.cache,
            logger: logger,
            clock: clock,
            jwt: jwt,
            opaqueTokens: opaqueTokens.map {
                OpaqueTokenAuthenticator(
                    store: $0,
                    cache: configuration.cache,
                    issuer: configuration.jwt.issuer,
                    logger: logger,
                    clock: clock
                )
            },
            introspection: Self.makeIntrospection(
                configuration,
                introspection: introspection,
                eventLoop: store.eventLoop,
                logger: logger,
                clock: clock
            )
        )
    }

    private static func makeIntrospection(
        _ configuration: GatewayConfiguration,
        introspection: LoopIntrospection?,
        eventLoop: any EventLoop,
        logger: Logger,
        clock: GatewayClock
    ) -> IntrospectionAuthenticator? {
        guard let introspection, !configuration.introspection.isEmpty else { return nil }
        return IntrospectionAuthenticator(
            endpoints: configuration.introspection,
            post: introspection.post,
            shared: introspection.shared,
            eventLoop: eventLoop,
            maximumEntries: configuration.cache.maxEntries,
            logger: logger,
            clock: clock
        )
    }

    private static func makeEndpoints(
        store: any CredentialStore,
        sessions: (any SessionStore)?,
        limiter: RateLimiter,
        authenticator: Authenticator,
        configuration: GatewayConfiguration,
        clock: GatewayClock
    ) -> APIKeyEndpoints {
        let settings = configuration.apiKeys
        let policy =
            settings.managementRateLimit.flatMap(configuration.rateLimitPolicy(named:))
            ?? APIKeySettings.managementDefaultPolicy
        let eventLoop = store.eventLoop
        return APIKeyEndpoints(
            service: APIKeyService(store: store, hash: authenticator.hash(apiKey:)),
            clock: clock,
            policies: Set(configuration.rateLimits.map(\.name)),
            sessionIssuer: configuration.jwt.issuer,
            sessions: sessions,
            maxKeysPerOwner: settings.maxKeysPerOwner,
            admit: { principal in
                // Buckets of their own: management calls never use up a caller's API quota.
                let outcome: EventLoopFuture<RateLimitOutcome>
                switch limiter.decide(policy: policy, key: "api-keys:" + principal.rateLimitKey) {
                case .decided(let decision): outcome = eventLoop.makeSucceededFuture(.decided(decision))
                case .pending(let future): outcome = future
                }
                return outcome.flatMapThrowing { outcome in
                    if case .refused(let error) = RateLimitGate.combine([outcome]) { throw error }
                }
            }
        )
    }

    /// Switches this loop to `configuration`. A changed upstream (or upstream TLS context)
    /// gets a fresh pool; the old one is retired so its connections close as their
    /// exchanges end. Routes and cache settings take effect for new requests; a new
    /// `store` replaces the old one (Redis settings changed); new `tls` contexts serve new
    /// connections while established ones keep theirs.
    /// - Parameter identity: a new JWT setup when `[auth.jwt]` changed (`.some(nil)` turns
    ///   JWTs off); nil keeps this loop's verifier, cache and keys.
    package func apply(
        _ configuration: GatewayConfiguration,
        logger: Logger,
        store: (any CredentialStore)? = nil,
        tls: GatewayTLSContexts? = nil,
        identity: LoopIdentity?? = nil
    ) {
        self.eventLoop.preconditionInEventLoop()
        let previousIntrospection = self.configuration.introspection
        let tls = tls ?? self.tls
        if configuration.upstream != self.configuration.upstream || tls.upstream !== self.tls.upstream {
            self.pool.retire()
            self.pool = UpstreamPool(
                eventLoop: self.eventLoop,
                settings: configuration.upstream,
                connector: self.connector,
                tls: tls.upstream,
                logger: logger,
                clock: self.clock
            )
        }
        self.tls = tls
        self.strictTransportSecurity = configuration.server.tls?.strictTransportSecurity
        if let store {
            self.store = store
        }
        self.upstreamAuthority = configuration.upstream.authority
        self.routes = RouteTable(routes: configuration.routes, unmatched: configuration.server.unmatchedRoutes)
        self.configuration = configuration
        self.logger = logger
        self.accessLog = AccessLog(
            logger: logger,
            enabled: configuration.logging.accessLog,
            sampleRate: configuration.logging.accessLogSampleRate
        )
        if let identity {
            self.identity = identity
            self.jwtAuthenticator = Self.makeJWT(identity, eventLoop: self.eventLoop, logger: logger, clock: self.clock)
            self.sessionEndpoints = Self.makeSessions(
                identity,
                jwt: self.jwtAuthenticator,
                limiter: self.rateLimiter,
                eventLoop: self.eventLoop,
                logger: logger,
                clock: self.clock
            )
        }
        if store == nil {
            // The introspection setup survives a reload that leaves it alone, with what its
            // loop cache learned; changed endpoints start afresh.
            let introspection: IntrospectionAuthenticator?? =
                configuration.introspection == previousIntrospection
                ? nil
                : .some(
                    Self.makeIntrospection(
                        configuration,
                        introspection: self.introspection,
                        eventLoop: self.eventLoop,
                        logger: logger,
                        clock: self.clock
                    )
                )
            self.authenticator.apply(
                cache: configuration.cache,
                jwt: self.jwtAuthenticator,
                logger: logger,
                opaqueTokenIssuer: configuration.jwt.issuer,
                introspection: introspection
            )
        } else {
            // Another store: what the old one answered says nothing about the new one.
            self.authenticator = Self.makeAuthenticator(
                configuration,
                store: self.store,
                hmac: self.hmac,
                logger: logger,
                clock: self.clock,
                jwt: self.jwtAuthenticator,
                opaqueTokens: self.opaqueTokenStore,
                introspection: self.introspection
            )
        }
        self.apiKeyEndpoints = Self.makeEndpoints(
            store: self.managementStore ?? self.store,
            sessions: self.managementSessions ?? self.sessionStore,
            limiter: self.rateLimiter,
            authenticator: self.authenticator,
            configuration: configuration,
            clock: self.clock
        )
        if let factory = self.localEndpointFactory {
            self.localEndpoints = factory(self)
        }
    }

    /// The JWT runtime in force on this loop (our issuer's keys, the policies), if any.
    package var identityRuntime: IdentityRuntime? { self.identity?.runtime }

    /// The API-key hasher (keyed with the pepper); client secrets are hashed with it too.
    package var secretHasher: HMACSHA256 { self.hmac }

    /// The key service `/v1/api-keys` uses (the management store, the same hash): the
    /// settings pages create, list and revoke keys through it.
    package var managementKeyService: APIKeyService {
        APIKeyService(store: self.managementStore ?? self.store, hash: self.authenticator.hash(apiKey:))
    }

    /// Installs the server's local endpoints and remembers `factory` to rebuild them with
    /// each configuration `apply` brings.
    package func installLocalEndpoints(_ factory: @escaping LocalEndpointFactory) {
        self.eventLoop.preconditionInEventLoop()
        self.localEndpointFactory = factory
        self.localEndpoints = factory(self)
    }

    /// Closes idle upstream connections (shutdown).
    package func shutdown() {
        self.eventLoop.preconditionInEventLoop()
        self.pool.retire()
    }

    /// Idle upstream connections kept by this loop (for tests and metrics).
    package var idleUpstreamConnections: Int { self.pool.idleCount }
}
