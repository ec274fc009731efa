import GatewayAuth
import GatewayConfig
import GatewayCore
import GatewayOAuth
import GatewayPages
import GatewayProxy
import GatewayRedis
import GatewayStore
import Logging
import NIOCore

extension GatewayServer {
    /// The browser pages of the OAuth authorization server for one loop, or nil when the
    /// configuration in force makes the gateway no OAuth server (`[oauth]` needs an issuer
    /// and Redis). Called on the loop by its local-endpoint factory, at start and on every
    /// reload; `redis` is the loop's management connection (the pages are management
    /// traffic, kept off the request path's connection).
    static func authorizePages(_ loop: LoopContext, redis: RedisClient?) -> AuthorizePages? {
        let configuration = loop.configuration
        guard let oauth = configuration.oauth, let issuer = configuration.jwt.issuer, let redis,
            let prefix = configuration.redis?.keyPrefix, let users = loop.sessionStore,
            let credentials = loop.sessionEndpoints?.credentials
        else { return nil }
        let oauthStore = RedisOAuthStore(client: redis, keyPrefix: prefix)
        let registry = OAuthClientRegistry(
            configured: OAuthClientRegistry.configuredClients(oauth, hmac: loop.hmac), store: oauthStore, hmac: loop.hmac)
        let now = loop.now
        return AuthorizePages(AuthorizePages.Dependencies(
            issuer: issuer,
            codeTTL: max(1, oauth.codeTTL.components.seconds),
            sessionPolicy: BrowserSessionPolicy(configuration.ui),
            client: { registry.client(id: $0) },
            oauthStore: oauthStore,
            browserState: RedisBrowserStateStore(client: redis, keyPrefix: prefix),
            users: users,
            credentials: credentials,
            logger: loop.logger,
            now: { now() }))
    }
}
