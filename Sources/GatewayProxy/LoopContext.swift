package import GatewayAuth
package import GatewayConfig
package import GatewayCore
package import GatewayRateLimit
package import Logging
package import NIOCore

/// Everything one event loop needs to serve requests: the configuration snapshot in
/// force, the TLS contexts, the upstream pool, the loggers and the handlers the server
/// built for this loop.
///
/// One per event loop, created at start-up. It is touched only on its own loop, which is
/// what lets the request path run without locks: a reload does not mutate shared state,
/// it asks each loop to `apply` the new snapshot there. Requests already in flight keep
/// the snapshot and pool they started with.
package final class LoopContext {
    package let eventLoop: any EventLoop
    package private(set) var configuration: GatewayConfiguration
    private(set) var pool: UpstreamPool
    private let connector: UpstreamConnector
    package private(set) var logger: Logger
    package private(set) var accessLog: AccessLog
    /// Counters and histograms of this loop (read by the admin listener).
    package let metrics = LoopMetrics()
    /// `Host` for the upstream, computed once per configuration rather than per request.
    package private(set) var upstreamAuthority: String
    /// The TLS contexts in force: new TLS connections on this loop use these.
    package private(set) var tls: GatewayTLSContexts
    /// `Strict-Transport-Security` for responses on TLS listeners (nil: HSTS off).
    package private(set) var strictTransportSecurity: String?
    /// Client connections currently open on this loop.
    package internal(set) var openClientConnections = 0
    /// Client connections of this loop waiting for a request head: the ones closed first
    /// when `max_connections` is reached.
    package let waitingConnections = WaitingConnections()
    /// `[[routes]]` of the configuration in force: what each request needs.
    package private(set) var routes: RouteTable
    /// Token buckets of this loop: Redis-backed when `[redis]` is configured.
    package let rateLimiter: RateLimiter
    /// The gateway's clock (the server's `.system`; a manual one in tests).
    package let clock: GatewayClock
    /// What this loop answers requests with; replaced as a whole (by `apply`, or by the
    /// server once the handlers that read its own per-loop state exist).
    package var handlers: LoopHandlers

    /// Credential and scope decisions for this loop.
    package var authenticator: Authenticator { self.handlers.authenticator }
    /// `/v1/api-keys`.
    package var apiKeyEndpoints: APIKeyEndpoints { self.handlers.apiKeyEndpoints }
    /// Login, refresh, logout, JWKS (nil unless we are an issuer).
    package var sessionEndpoints: SessionEndpoints? { self.handlers.sessionEndpoints }
    /// Endpoints answered on this loop besides the ones above, in match order.
    package var localEndpoints: [any LocalEndpoint] { self.handlers.localEndpoints }

    package init(
        eventLoop: any EventLoop,
        configuration: GatewayConfiguration,
        connector: @escaping UpstreamConnector,
        logger: Logger,
        tls: GatewayTLSContexts = GatewayTLSContexts(),
        rateLimiter: RateLimiter,
        handlers: LoopHandlers,
        clock: GatewayClock
    ) {
        self.eventLoop = eventLoop
        self.clock = clock
        self.configuration = configuration
        self.connector = connector
        self.logger = logger
        self.accessLog = AccessLog(
            logger: logger,
            enabled: configuration.logging.accessLog,
            sampleRate: configuration.logging.accessLogSampleRate
        )
        self.tls = tls
        self.strictTransportSecurity = configuration.server.tls?.strictTransportSecurity
        self.pool = UpstreamPool(
            eventLoop: eventLoop,
            settings: configuration.upstream,
            connector: connector,
            tls: tls.upstream,
            logger: logger,
            clock: clock
        )
        self.upstreamAuthority = configuration.upstream.authority
        self.routes = RouteTable(routes: configuration.routes, unmatched: configuration.server.unmatchedRoutes)
        self.rateLimiter = rateLimiter
        self.handlers = handlers
    }

    /// Switches this loop to `configuration`. A changed upstream (or upstream TLS context)
    /// gets a fresh pool; the old one is retired so its connections close as their
    /// exchanges end. New `tls` contexts serve new connections while established ones keep
    /// theirs; `handlers` answer new requests.
    package func apply(
        _ configuration: GatewayConfiguration,
        logger: Logger,
        tls: GatewayTLSContexts,
        handlers: LoopHandlers
    ) {
        self.eventLoop.preconditionInEventLoop()
        if configuration.upstream != self.configuration.upstream || tls.upstream !== self.tls.upstream {
            self.pool.retire()
            self.pool = UpstreamPool(
                eventLoop: self.eventLoop,
                settings: configuration.upstream,
                connector: self.connector,
                tls: tls.upstream,
                logger: logger,
                clock: self.clock
            )
        }
        self.tls = tls
        self.strictTransportSecurity = configuration.server.tls?.strictTransportSecurity
        self.upstreamAuthority = configuration.upstream.authority
        self.routes = RouteTable(routes: configuration.routes, unmatched: configuration.server.unmatchedRoutes)
        self.configuration = configuration
        self.logger = logger
        self.accessLog = AccessLog(
            logger: logger,
            enabled: configuration.logging.accessLog,
            sampleRate: configuration.logging.accessLogSampleRate
        )
        self.handlers = handlers
    }

    /// Closes idle upstream connections (shutdown).
    package func shutdown() {
        self.eventLoop.preconditionInEventLoop()
        self.pool.retire()
    }

    /// Idle upstream connections kept by this loop (for tests and metrics).
    package var idleUpstreamConnections: Int { self.pool.idleCount }
}
