import GatewayAuth
import GatewayConfig
import GatewayCore
import GatewayPages
import GatewayProxy
import Logging
import NIOCore

extension GatewayServer {
    /// What the sign-in pages show of `[sso]` in `configuration`.
    static func ssoButtons(_ configuration: GatewayConfiguration) -> SSOButtons {
        guard let sso = configuration.sso else { return .passwordOnly }
        return SSOButtons(passwordLogin: sso.passwordLogin, providers: sso.providers.map { ($0.name, $0.displayName) })
    }

    /// The relying-party endpoint of one loop, or nil without `[[sso.providers]]` (or without
    /// an issuer or a store for sessions). Called on the loop by its local-endpoint factory.
    static func ssoEndpoint(_ loop: LoopAssembly, stores: LoopStores.Pages?) -> SSOEndpoint? {
        let configuration = loop.configuration
        guard let sso = configuration.sso, !sso.providers.isEmpty, let issuer = configuration.jwt.issuer, let stores,
            let credentials = loop.sessionEndpoints?.credentials
        else { return nil }
        let refresher = loop.shared.ssoRefresher
        let base = issuer.hasSuffix("/") ? String(issuer.dropLast()) : issuer
        return SSOEndpoint(
            SSOEndpoint.Dependencies(
                settings: sso,
                redirectURI: base + SSOEndpoint.callbackPath,
                settingsPaths: configuration.ui.settingsPagesOn(issuer: issuer)
                    ? SettingsPaths(prefix: configuration.ui.pathPrefix) : nil,
                sessionPolicy: BrowserSessionPolicy(configuration.ui),
                browserState: stores.browserState,
                users: loop.sessionStore,
                credentials: credentials,
                keyRing: loop.ssoRing,
                fetcher: loop.shared.fetcher,
                poster: loop.shared.poster,
                refetchKeys: { issuer, eventLoop in refresher.refetch(issuer: issuer, from: eventLoop) },
                logger: loop.logger,
                clock: loop.clock
            )
        )
    }

    /// Builds the client TLS context of every https provider now, off the event loops.
    static func prepareSSOTLS(_ configuration: GatewayConfiguration, contexts: HTTPFetchers.TLSContexts, logger: Logger)
    {
        for provider in configuration.sso?.providers ?? [] where provider.issuer.lowercased().hasPrefix("https:") {
            do {
                _ = try contexts.context(caFile: provider.caFile)
            } catch {
                logger.error(
                    "sso provider TLS setup failed; signing in with it fails until fixed",
                    metadata: ["provider": "\(provider.name)", "error": "\(error)"]
                )
            }
        }
    }
}
