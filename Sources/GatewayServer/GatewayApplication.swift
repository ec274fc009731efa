package import GatewayAuth
package import GatewayConfig
package import GatewayProxy

/// One validated configuration with everything built from it that reads files or keys:
/// the TLS contexts (`[server.tls]`, an `https://` upstream) and the JWT runtime
/// (`[auth.jwt]`: our signing keys, trusted issuers, JWKS files).
///
/// The one place the application is assembled from a configuration: start-up, SIGHUP
/// reload and `check-config` all call `build(from:)`, so a file that `check-config`
/// accepts is one that starts and reloads. Immutable; built off the event loops (it reads
/// files); any thread.
package struct GatewayApplication: Sendable {
    package let configuration: GatewayConfiguration
    /// The TLS contexts of `configuration` (empty when built without them, see `build`).
    package let tls: GatewayTLSContexts
    /// The JWT runtime; nil when `[auth.jwt]` configures no issuer at all.
    package let identity: IdentityRuntime?
    /// Keys of JWKS files that were skipped (weak, unsupported): the caller logs or prints
    /// them; the rest of the file is in use.
    package let warnings: [String]

    package init(
        configuration: GatewayConfiguration,
        tls: GatewayTLSContexts,
        identity: IdentityRuntime?,
        warnings: [String] = []
    ) {
        self.configuration = configuration
        self.tls = tls
        self.identity = identity
        self.warnings = warnings
    }

    /// Loads the certificates (each key checked against its certificate) and the JWT keys
    /// of `configuration`.
    /// - Parameter loadingTLS: false leaves the TLS contexts out (`explain` opens no
    ///   connection, so a certificate problem must not stop it).
    /// - Throws: `TLSSetupError` naming every bad certificate or key, or
    ///   `IdentitySetupError` for `[auth.jwt]`; never a crash.
    package static func build(
        from configuration: GatewayConfiguration,
        loadingTLS: Bool = true
    ) throws -> GatewayApplication {
        let tls = loadingTLS ? try Self.makeTLSContexts(configuration) : GatewayTLSContexts()
        var warnings: [String] = []
        let identity: IdentityRuntime?
        do {
            identity = try IdentityRuntime.build(configuration.jwt) { warnings.append($0) }
        } catch {
            throw IdentitySetupError(underlying: error)
        }
        return GatewayApplication(configuration: configuration, tls: tls, identity: identity, warnings: warnings)
    }

    /// What putting `next` in force changes, for a running gateway built from `self`.
    /// Settings only a restart can change (listeners, event loops, `[redis]`, `[admin]`,
    /// the pepper, adding or removing `[server.tls]`) keep their current values and are
    /// named in `needsRestart`.
    package func changes(to next: GatewayApplication) -> ApplicationChange {
        let old = self.configuration
        let new = next.configuration
        var effective = new
        var tls = next.tls
        var needsRestart: [String] = []
        if (new.server.tls == nil) != (old.server.tls == nil) {
            needsRestart.append("[server.tls] was added or removed")
            effective.server.tls = old.server.tls
            tls.server = self.tls.server
        }
        if new.server.listen != old.server.listen {
            needsRestart.append("server.listen changed")
            effective.server.listen = old.server.listen
        }
        if new.server.eventLoops != old.server.eventLoops {
            needsRestart.append("server.event_loops changed")
            effective.server.eventLoops = old.server.eventLoops
        }
        if new.redis != old.redis {
            needsRestart.append("[redis] changed")
            effective.redis = old.redis
        }
        if new.admin != old.admin {
            // The admin listener is bound once, at start, with its token.
            needsRestart.append("[admin] changed")
            effective.admin = old.admin
        }
        if new.apiKeys.pepper != old.apiKeys.pepper {
            needsRestart.append("the API-key pepper changed")
            effective.apiKeys.pepper = old.apiKeys.pepper
        }
        let identity: ApplicationChange.Identity
        if new.jwt == old.jwt {
            identity = .unchanged
        } else if let runtime = next.identity {
            identity = .replaced(runtime)
        } else {
            identity = .removed
        }
        let application = GatewayApplication(
            configuration: effective,
            tls: tls,
            identity: new.jwt == old.jwt ? self.identity : next.identity,
            warnings: next.warnings
        )
        return ApplicationChange(
            application: application,
            needsRestart: needsRestart,
            identity: identity,
            ssoKeySourcesChanged: Self.ssoKeySources(new) != Self.ssoKeySources(old),
            introspectionChanged: new.introspection != old.introspection
        )
    }

    /// The key sources of the `[[sso.providers]]`' ID tokens: each provider's discovery
    /// document names its `jwks_uri`; a refresher keeps the set current.
    package static func ssoKeySources(_ configuration: GatewayConfiguration) -> [IssuerSettings] {
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
}
