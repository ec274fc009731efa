import GatewayAuth
import GatewayConfig
import GatewayCore
import GatewayCrypto
import GatewayPages
import GatewayProxy
import GatewayRateLimit
import GatewayStore
import Logging
import NIOCore

/// One event loop's application: its stores, the authentication state that lives across
/// reloads (the credential cache inside `authenticator`, the JWT verifier and its cache
/// while `[auth.jwt]` is unchanged, the SSO key ring) and the `LoopContext` the proxy runs.
/// On every reload it rebuilds the handlers from that state and hands them to the context.
///
/// Built on its loop by `GatewayServer`, touched only on that loop after.
final class LoopAssembly {
    let eventLoop: any EventLoop
    /// What the proxy runs on this loop.
    let context: LoopContext
    private(set) var configuration: GatewayConfiguration
    private(set) var logger: Logger
    let stores: LoopStores
    let shared: SharedLoopServices
    /// The providers' ID-token keys and discovery documents (they outlive reloads).
    let ssoRing = SSOKeyRing()
    /// The gateway's one clock (`shared.clock`).
    let clock: GatewayClock
    /// The JWT side of this loop (nil without `[auth.jwt]`).
    private(set) var identity: LoopIdentity?
    /// JWT verification on this loop; kept across reloads that leave `[auth.jwt]` alone, so
    /// its cache and fetched keys survive.
    private(set) var jwtAuthenticator: JWTAuthenticator?
    /// Route, credential and scope decisions; one for the process's life (its cache survives
    /// reloads).
    let authenticator: Authenticator
    /// The budget of failed API key authentications per client address (nil when
    /// `failures_per_address = 0`); what it learned survives reloads that keep it on.
    private var failureLimiter: FailedAuthenticationLimiter?
    /// Login, refresh, logout, JWKS (nil unless we are an issuer).
    private(set) var sessionEndpoints: SessionEndpoints?
    private let introspection: LoopIntrospection

    /// Builds everything of `application` for `eventLoop`. Call on `eventLoop`.
    init(
        eventLoop: any EventLoop,
        application: GatewayApplication,
        logger: Logger,
        stores: LoopStores,
        rateLimiter: RateLimiter,
        shared: SharedLoopServices
    ) {
        eventLoop.preconditionInEventLoop()
        let configuration = application.configuration
        self.eventLoop = eventLoop
        self.configuration = configuration
        self.logger = logger
        self.stores = stores
        self.shared = shared
        self.clock = shared.clock
        let clock = shared.clock
        self.introspection = LoopIntrospection(post: shared.poster, shared: stores.introspectionCache)
        let identity = application.identity.map {
            LoopIdentity.make($0, sessions: stores.sessions, shared: shared)
        }
        self.identity = identity
        let jwt = Self.makeJWT(identity, eventLoop: eventLoop, logger: logger, clock: clock)
        self.jwtAuthenticator = jwt
        self.authenticator = Authenticator(
            eventLoop: eventLoop,
            store: stores.credentials,
            hmac: shared.hmac,
            cache: configuration.cache,
            logger: logger,
            clock: clock,
            jwt: jwt,
            opaqueTokens: stores.opaqueTokens.map {
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
                introspection: self.introspection,
                eventLoop: eventLoop,
                logger: logger,
                clock: clock
            )
        )
        self.failureLimiter = configuration.apiKeys.failurePolicy.map {
            FailedAuthenticationLimiter(policy: $0, limiter: rateLimiter, clock: clock, logger: logger)
        }
        self.authenticator.failureLimit = self.failureLimiter
        self.sessionEndpoints = Self.makeSessions(
            identity,
            jwt: jwt,
            limiter: rateLimiter,
            eventLoop: eventLoop,
            logger: logger,
            clock: clock
        )
        self.context = LoopContext(
            eventLoop: eventLoop,
            configuration: configuration,
            connector: shared.connector,
            logger: logger,
            tls: application.tls,
            rateLimiter: rateLimiter,
            handlers: LoopHandlers(
                authenticator: self.authenticator,
                apiKeyEndpoints: Self.makeAPIKeyEndpoints(
                    stores: stores,
                    limiter: rateLimiter,
                    authenticator: self.authenticator,
                    configuration: configuration,
                    clock: clock
                ),
                sessionEndpoints: self.sessionEndpoints
            ),
            clock: clock
        )
        // The local endpoints read this assembly: built once it is complete.
        self.context.handlers = self.handlers()
    }

    /// Puts a reload's `change` in force on this loop. What this loop learned is kept:
    /// the credential cache, and the JWT verifier with its cache unless `[auth.jwt]` changed.
    func apply(_ change: ApplicationChange, logger: Logger) {
        self.eventLoop.preconditionInEventLoop()
        let configuration = change.application.configuration
        self.configuration = configuration
        self.logger = logger
        switch change.identity {
        case .unchanged:
            break
        case .replaced(let runtime):
            self.replaceIdentity(LoopIdentity.make(runtime, sessions: self.stores.sessions, shared: self.shared))
        case .removed:
            self.replaceIdentity(nil)
        }
        // The introspection setup survives a reload that leaves it alone, with what its loop
        // cache learned; changed endpoints start afresh.
        let introspection: Authenticator.IntrospectionChange =
            change.introspectionChanged
            ? .replace(
                Self.makeIntrospection(
                    configuration,
                    introspection: self.introspection,
                    eventLoop: self.eventLoop,
                    logger: logger,
                    clock: self.clock
                )
            )
            : .keep
        self.applyFailurePolicy(configuration.apiKeys.failurePolicy, logger: logger)
        self.authenticator.apply(
            cache: configuration.cache,
            jwt: self.jwtAuthenticator,
            logger: logger,
            opaqueTokenIssuer: configuration.jwt.issuer,
            introspection: introspection
        )
        self.context.apply(configuration, logger: logger, tls: change.application.tls, handlers: self.handlers())
    }

    private func applyFailurePolicy(_ policy: RateLimitPolicy?, logger: Logger) {
        switch (policy, self.failureLimiter) {
        case (nil, _):
            self.failureLimiter = nil
        case (let policy?, let limiter?):
            limiter.apply(policy: policy, logger: logger)
        case (let policy?, nil):
            self.failureLimiter = FailedAuthenticationLimiter(
                policy: policy,
                limiter: self.rateLimiter,
                clock: self.clock,
                logger: logger
            )
        }
        self.authenticator.failureLimit = self.failureLimiter
    }

    private func replaceIdentity(_ identity: LoopIdentity?) {
        self.identity = identity
        self.jwtAuthenticator = Self.makeJWT(
            identity,
            eventLoop: self.eventLoop,
            logger: self.logger,
            clock: self.clock
        )
        self.sessionEndpoints = Self.makeSessions(
            identity,
            jwt: self.jwtAuthenticator,
            limiter: self.rateLimiter,
            eventLoop: self.eventLoop,
            logger: self.logger,
            clock: self.clock
        )
    }

    /// The handlers of the state in force; the local endpoints read it, so they come last.
    private func handlers() -> LoopHandlers {
        var handlers = LoopHandlers(
            authenticator: self.authenticator,
            apiKeyEndpoints: Self.makeAPIKeyEndpoints(
                stores: self.stores,
                limiter: self.rateLimiter,
                authenticator: self.authenticator,
                configuration: self.configuration,
                clock: self.clock
            ),
            sessionEndpoints: self.sessionEndpoints
        )
        // The pages first: the OAuth endpoint answers every other /oauth/ path.
        let pages: (any LocalEndpoint)? = GatewayServer.authorizePages(self, stores: self.stores.pages)
        let oauth: (any LocalEndpoint)? = GatewayServer.oauthEndpoint(
            self,
            stores: self.stores.oauth,
            pool: self.shared.passwordPool
        )
        let settings: (any LocalEndpoint)? = GatewayServer.settingsPages(self, stores: self.stores.pages)
        let sso: (any LocalEndpoint)? = GatewayServer.ssoEndpoint(self, stores: self.stores.pages)
        handlers.localEndpoints = [pages, oauth, settings, sso].compactMap { $0 }
        return handlers
    }

    /// Token buckets of this loop.
    var rateLimiter: RateLimiter { self.context.rateLimiter }

    /// This loop's session store (users, refresh families, revoked JWT ids).
    var sessionStore: any SessionStore { self.stores.sessions }

    /// The JWT runtime in force on this loop (our issuer's keys, the policies), if any.
    var identityRuntime: IdentityRuntime? { self.identity?.runtime }

    /// The API-key hasher (keyed with the pepper); client secrets are hashed with it too.
    var secretHasher: HMACSHA256 { self.shared.hmac }

    /// The key service `/v1/api-keys` uses (the management store, the same hash): the
    /// settings pages create, list and revoke keys through it.
    var managementKeyService: APIKeyService {
        APIKeyService(store: self.stores.managementCredentials, hash: self.authenticator.hash(apiKey:))
    }
}
