import GatewayAuth
import GatewayConfig
import GatewayCore
import GatewayPages
import GatewayProxy
import Logging
import NIOConcurrencyHelpers
import NIOCore

extension GatewayServer {
    /// What the sign-in pages show of `[sso]` in `configuration`.
    static func ssoButtons(_ configuration: GatewayConfiguration) -> SSOButtons {
        guard let sso = configuration.sso else { return .passwordOnly }
        return SSOButtons(passwordLogin: sso.passwordLogin, providers: sso.providers.map { ($0.name, $0.displayName) })
    }

    /// The relying-party endpoint of one loop, or nil without `[[sso.providers]]` (or without
    /// an issuer or a store for sessions). Called on the loop by its local-endpoint factory.
    static func ssoEndpoint(
        _ loop: LoopContext,
        stores: PageStores?,
        keyRing: SSOKeyRing,
        fetcher: @escaping HTTPFetcher,
        poster: @escaping HTTPPoster,
        refresher: NIOLockedValueBox<JWKSRefresher?>
    ) -> SSOEndpoint? {
        let configuration = loop.configuration
        guard let sso = configuration.sso, !sso.providers.isEmpty, let issuer = configuration.jwt.issuer, let stores,
            let users = loop.sessionStore, let credentials = loop.sessionEndpoints?.credentials
        else { return nil }
        let base = issuer.hasSuffix("/") ? String(issuer.dropLast()) : issuer
        return SSOEndpoint(
            SSOEndpoint.Dependencies(
                settings: sso,
                redirectURI: base + SSOEndpoint.callbackPath,
                settingsPaths: configuration.ui.settingsPagesOn(issuer: issuer)
                    ? SettingsPaths(prefix: configuration.ui.pathPrefix) : nil,
                sessionPolicy: BrowserSessionPolicy(configuration.ui),
                browserState: stores.browserState,
                users: users,
                credentials: credentials,
                keyRing: keyRing,
                fetcher: fetcher,
                poster: poster,
                refetchKeys: { issuer, eventLoop in
                    // Only on an unknown kid at a sign-in: rare, so the lock is never hot.
                    refresher.withLockedValue { $0 }?.refetch(issuer: issuer, from: eventLoop)
                },
                logger: loop.logger,
                clock: loop.clock
            )
        )
    }

    /// The key sources of the providers' ID tokens: each provider's discovery document names
    /// its `jwks_uri`; the refresher keeps the set current and installs it in every loop's ring.
    static func ssoIssuers(_ configuration: GatewayConfiguration) -> [IssuerSettings] {
        (configuration.sso?.providers ?? []).map { provider in
            var settings = IssuerSettings(
                issuer: provider.issuer,
                keySource: .discovery(provider.discoveryURL),
                audiences: [provider.clientID]
            )
            settings.caFile = provider.caFile
            settings.fetchTimeout = provider.timeout
            settings.unknownKeyRefetchInterval = .seconds(10)
            return settings
        }
    }

    /// A refresher for the providers' keys that installs key sets in `rings` (one per loop).
    static func makeSSORefresher(
        _ configuration: GatewayConfiguration,
        rings: [NIOLoopBound<SSOKeyRing>],
        group: any EventLoopGroup,
        fetcher: @escaping HTTPFetcher,
        logger: Logger,
        clock: GatewayClock
    ) -> JWKSRefresher? {
        let issuers = Self.ssoIssuers(configuration)
        guard !issuers.isEmpty, let loop = rings.first?.eventLoop else { return nil }
        return JWKSRefresher(
            eventLoop: loop,
            issuers: issuers,
            fetcher: fetcher,
            logger: logger,
            clock: clock,
            install: { issuer, keys in
                let installs = rings.map { ring in
                    ring.eventLoop.submit { ring.value.install(issuer: issuer, keys: keys) }
                }
                return EventLoopFuture.andAllSucceed(installs, on: group.next())
            }
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
