import GatewayConfig
import GatewayCore
import GatewayPages
import GatewayProxy

extension GatewayServer {
    /// The settings pages (Settings > API Keys) of one loop, or nil when the configuration
    /// in force turns them off: `[ui] enabled = false`, no issuer (nobody to sign in), or no
    /// store for browser sessions. Called on the loop by its local-endpoint factory, at start
    /// and on every reload; with Redis the stores use the loop's management connection.
    static func settingsPages(_ loop: LoopContext, stores: PageStores?) -> SettingsPages? {
        let configuration = loop.configuration
        guard configuration.ui.settingsPagesOn(issuer: configuration.jwt.issuer), let stores,
            let users = loop.sessionStore,
            let credentials = loop.sessionEndpoints?.credentials
        else { return nil }
        var dependencies = SettingsPages.Dependencies(
            prefix: configuration.ui.pathPrefix,
            sessionPolicy: BrowserSessionPolicy(configuration.ui),
            browserState: stores.browserState,
            users: users,
            credentials: credentials,
            keys: loop.managementKeyService,
            maxKeysPerOwner: configuration.apiKeys.maxKeysPerOwner,
            logger: loop.logger,
            clock: loop.clock
        )
        dependencies.sso = Self.ssoButtons(configuration)
        return SettingsPages(dependencies)
    }
}
