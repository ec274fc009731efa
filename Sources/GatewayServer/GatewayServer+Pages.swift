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

/// Where one loop's pages keep codes, consents, browser sessions and flows: Redis (the
/// loop's management connection; the OAuth store is the OAuth endpoint's) or, for the demo
/// without Redis, process memory. Built on the loop, used only there.
struct PageStores {
    var oauth: any OAuthStore
    var browserState: any BrowserStateStore

}

extension GatewayServer {
    /// The browser pages of the OAuth authorization server for one loop, or nil when the
    /// configuration in force makes the gateway no OAuth server (`[oauth]` needs an issuer
    /// and a store). Called on the loop by its local-endpoint factory, at start and on every
    /// reload; with Redis the stores use the loop's management connection (the pages are
    /// management traffic, kept off the request path's connection).
    static func authorizePages(_ loop: LoopContext, stores: PageStores?) -> AuthorizePages? {
        let configuration = loop.configuration
        guard let oauth = configuration.oauth, let issuer = configuration.jwt.issuer, let stores,
            let users = loop.sessionStore, let credentials = loop.sessionEndpoints?.credentials
        else { return nil }
        let oauthStore = stores.oauth
        let registry = OAuthClientRegistry(
            configured: OAuthClientRegistry.configuredClients(oauth, hmac: loop.secretHasher),
            store: oauthStore,
            hmac: loop.secretHasher
        )
        var dependencies = AuthorizePages.Dependencies(
            issuer: issuer,
            codeTTL: max(1, oauth.codeTTL.components.seconds),
            sessionPolicy: BrowserSessionPolicy(configuration.ui),
            client: { registry.client(id: $0) },
            oauthStore: oauthStore,
            browserState: stores.browserState,
            users: users,
            credentials: credentials,
            logger: loop.logger,
            clock: loop.clock
        )
        dependencies.sso = Self.ssoButtons(configuration)
        return AuthorizePages(dependencies)
    }
}
