import GatewayAuth
import GatewayConfig
import GatewayCore
import GatewayCrypto
import GatewayOAuth
import GatewayProxy
import GatewayStore
import NIOCore
import NIOPosix

/// The per-loop stores the OAuth endpoint needs besides the loop's own: made once per loop
/// at start (on the loop's management Redis connection, off the request path's) and kept
/// across reloads. Touched only on that loop.
struct OAuthLoopStores {
    var clients: any OAuthStore
    var opaqueTokens: any OpaqueAccessTokenStore
}

extension GatewayServer {
    /// The OAuth endpoint for `context`'s current configuration, or nil when `[oauth]` is
    /// off (or the pieces it needs, our issuer and Redis, are not there). Called by the
    /// loop's local-endpoint factory: at start and after every reload, on the loop.
    static func oauthEndpoint(_ context: LoopContext, stores: OAuthLoopStores?, pool: NIOThreadPool) -> OAuthEndpoint? {
        let configuration = context.configuration
        guard let settings = configuration.oauth, let stores, let runtime = context.identityRuntime,
            let issuer = runtime.issuer,
            let sessions = context.sessionStore
        else { return nil }
        let hmac = context.secretHasher
        let loop = context.eventLoop
        let jwtSettings = runtime.settings
        let ownPolicy = issuer.policy(
            leewaySeconds: Int64(jwtSettings.leeway.components.seconds),
            maxLifetimeSeconds: Int64(jwtSettings.maxTokenLifetime.components.seconds)
        )
        let ownKeys = issuer.verificationKeys
        let clock = context.clock
        weak let jwt = context.jwtAuthenticator
        return OAuthEndpoint(
            OAuthEndpoint.Dependencies(
                issuer: issuer,
                registry: OAuthClientRegistry(
                    configured: OAuthClientRegistry.configuredClients(settings, hmac: hmac),
                    store: stores.clients,
                    hmac: hmac
                ),
                store: stores.clients,
                sessions: sessions,
                opaqueTokens: stores.opaqueTokens,
                throttle: RateLimitedLoginThrottle(limiter: context.rateLimiter, eventLoop: loop, oauth: settings),
                signAccessToken: { subject, scopes, clientID, now, loop in
                    // RSA signing costs a millisecond or more: never on an event loop.
                    pool.runIfActive(eventLoop: loop) {
                        let signed = try issuer.accessToken(
                            subject: subject,
                            scopes: scopes,
                            clientID: clientID,
                            now: now
                        )
                        return SignedAccessToken(
                            token: signed.token,
                            tokenID: signed.tokenID,
                            expiresAt: signed.expiresAt
                        )
                    }
                },
                checkSecret: { candidates, client, loop in
                    pool.runIfActive(eventLoop: loop) {
                        candidates.contains { OAuthClientRegistry.verify($0, of: client, hmac: hmac) }
                    }
                },
                verifyOwnToken: { token in
                    let verifier = JWTVerifier(policies: [ownPolicy], keySets: [ownPolicy.issuer: ownKeys])
                    if case .verified(let verified) = verifier.verify(token, now: clock.unixSeconds()) {
                        return verified
                    }
                    return nil
                },
                revokeLocally: { id, expiresAt in jwt?.revoke(tokenID: id, expiresAt: expiresAt) },
                refreshReuseGraceSeconds: Int64(jwtSettings.refreshReuseGrace.components.seconds),
                logger: context.logger,
                clock: clock
            )
        )
    }
}
