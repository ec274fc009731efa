package import GatewayConfig
import GatewayCore
package import Logging
import NIOCore

/// One configuration in force on an event loop, with everything derived from it: the route
/// table, the upstream's authority and pool, HSTS, the access log, the handlers built for it.
///
/// Immutable: a reload builds a new one and `LoopContext` swaps it in one assignment, so a
/// request that takes the snapshot when its head is accepted reads one configuration from
/// start to finish, however many reloads happen while it waits on the credential store,
/// the limiter or the upstream. A class so that taking it costs one retain, not one per
/// field. Built and read on its loop only.
package final class LoopSnapshot {
    package let configuration: GatewayConfiguration
    /// `[[routes]]`: what each request needs.
    package let routes: RouteTable
    /// `Host` for the upstream, computed once per configuration rather than per request.
    package let upstreamAuthority: String
    /// The pool of connections to this configuration's upstream.
    let pool: UpstreamPool
    /// The TLS contexts in force: new TLS connections on this loop use these.
    package let tls: GatewayTLSContexts
    /// `Strict-Transport-Security` for responses on TLS listeners (nil: HSTS off).
    package let strictTransportSecurity: String?
    package let logger: Logger
    package let accessLog: AccessLog
    /// What this loop answers requests with besides proxying.
    package let handlers: LoopHandlers

    // The settings one request reads, resolved once per configuration.
    let maxBodyBytes: Int64
    let bodyTimeout: TimeAmount
    let trustedProxies: TrustedProxies
    let preserveHost: Bool
    let forwardAuthorization: Bool
    let forwardMethodOverride: Bool

    init(
        configuration: GatewayConfiguration,
        pool: UpstreamPool,
        tls: GatewayTLSContexts,
        logger: Logger,
        handlers: LoopHandlers
    ) {
        self.configuration = configuration
        self.routes = RouteTable(routes: configuration.routes, unmatched: configuration.server.unmatchedRoutes)
        self.upstreamAuthority = configuration.upstream.authority
        self.pool = pool
        self.tls = tls
        self.strictTransportSecurity = configuration.server.tls?.strictTransportSecurity
        self.logger = logger
        self.accessLog = AccessLog(
            logger: logger,
            enabled: configuration.logging.accessLog,
            sampleRate: configuration.logging.accessLogSampleRate
        )
        self.handlers = handlers
        self.maxBodyBytes = configuration.server.maxBodyBytes
        self.bodyTimeout = configuration.server.bodyTimeout.timeAmount
        self.trustedProxies = configuration.server.trustedProxies
        self.preserveHost = configuration.upstream.preserveHost
        self.forwardAuthorization = configuration.apiKeys.forwardAuthorization
        self.forwardMethodOverride = configuration.upstream.forwardMethodOverride
    }

    /// This snapshot with other handlers (the server's, once they exist), everything else
    /// shared.
    func replacing(handlers: LoopHandlers) -> LoopSnapshot {
        LoopSnapshot(
            configuration: self.configuration,
            pool: self.pool,
            tls: self.tls,
            logger: self.logger,
            handlers: handlers
        )
    }

    /// The `[[rate_limits]]` policies that apply to a request of `route` by `principal`.
    func rateLimitPolicies(route: String?, principal: Principal?) -> [RateLimitPolicy] {
        RateLimitGate.policies(route: route, principal: principal, configuration: self.configuration)
    }
}
