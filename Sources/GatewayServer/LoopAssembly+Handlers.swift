import GatewayAuth
import GatewayConfig
import GatewayCore
import GatewayProxy
import GatewayRateLimit
import GatewayStore
import Logging
import NIOCore

/// How one loop's handlers are made from its state; each call builds a fresh value that the
/// loop then owns (called on the loop).
extension LoopAssembly {
    static func makeJWT(
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

    static func makeSessions(
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
            rehashPassword: identity.rehashPassword,
            passwordCost: settings.passwordHashCost,
            decoyHash: identity.runtime.decoyHash,
            logger: logger,
            clock: clock,
            revokeLocally: { [weak jwt] id, expiresAt in jwt?.revoke(tokenID: id, expiresAt: expiresAt) },
            revokeSessionLocally: { [weak jwt] id, until in jwt?.revoke(sessionID: id, until: until) },
            verifyOwnToken: { token in
                let verifier = JWTVerifier(policies: [ownPolicy], keySets: [ownPolicy.issuer: ownKeys])
                if case .verified(let verified) = verifier.verify(token, now: clock.unixSeconds()) { return verified }
                return nil
            },
            refreshReuseGraceSeconds: Int64(settings.refreshReuseGrace.components.seconds)
        )
    }

    static func makeIntrospection(
        _ configuration: GatewayConfiguration,
        introspection: LoopIntrospection,
        eventLoop: any EventLoop,
        logger: Logger,
        clock: GatewayClock
    ) -> IntrospectionAuthenticator? {
        guard !configuration.introspection.isEmpty else { return nil }
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

    static func makeAPIKeyEndpoints(
        stores: LoopStores,
        limiter: RateLimiter,
        authenticator: Authenticator,
        configuration: GatewayConfiguration,
        clock: GatewayClock
    ) -> APIKeyEndpoints {
        let settings = configuration.apiKeys
        let policy =
            settings.managementRateLimit.flatMap(configuration.rateLimitPolicy(named:))
            ?? APIKeySettings.managementDefaultPolicy
        let store = stores.managementCredentials
        let eventLoop = store.eventLoop
        return APIKeyEndpoints(
            service: APIKeyService(store: store, hash: authenticator.hash(apiKey:)),
            clock: clock,
            policies: Set(configuration.rateLimits.map(\.name)),
            sessionIssuer: configuration.jwt.issuer,
            sessions: stores.managementSessions,
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
}
