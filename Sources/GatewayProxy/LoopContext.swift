package import GatewayAuth
package import GatewayConfig
package import GatewayCore
package import GatewayRateLimit
package import Logging
package import NIOCore

/// Everything one event loop needs to serve requests: the configuration snapshot in
/// force (with the TLS contexts, the upstream pool, the loggers and the handlers the server
/// built for this loop), the rate limiter and the loop's counters.
///
/// One per event loop, created at start-up. It is touched only on its own loop, which is
/// what lets the request path run without locks: a reload does not mutate shared state,
/// it asks each loop to `apply` the new snapshot there. Everything a reload changes is in
/// one immutable `LoopSnapshot`, replaced in one assignment: a request takes it once, when
/// its head is accepted, and keeps it (with its pool) until it ends.
package final class LoopContext {
    package let eventLoop: any EventLoop
    /// The configuration in force and everything derived from it.
    package private(set) var snapshot: LoopSnapshot
    private let connector: UpstreamConnector
    /// Counters and histograms of this loop (read by the admin listener).
    package let metrics = LoopMetrics()
    /// Client connections currently open on this loop.
    package internal(set) var openClientConnections = 0
    /// Client connections of this loop waiting for a request head: the ones closed first
    /// when `max_connections` is reached.
    package let waitingConnections = WaitingConnections()
    /// The idle and header deadlines of this loop's client connections, swept together.
    package let connectionDeadlines: ConnectionDeadlines
    /// Token buckets of this loop: Redis-backed when `[redis]` is configured.
    package let rateLimiter: RateLimiter
    /// The gateway's clock (the server's `.system`; a manual one in tests).
    package let clock: GatewayClock

    package var configuration: GatewayConfiguration { self.snapshot.configuration }
    var pool: UpstreamPool { self.snapshot.pool }
    package var logger: Logger { self.snapshot.logger }
    package var accessLog: AccessLog { self.snapshot.accessLog }
    /// `Host` for the upstream.
    package var upstreamAuthority: String { self.snapshot.upstreamAuthority }
    /// The TLS contexts in force: new TLS connections on this loop use these.
    package var tls: GatewayTLSContexts { self.snapshot.tls }
    /// `Strict-Transport-Security` for responses on TLS listeners (nil: HSTS off).
    package var strictTransportSecurity: String? { self.snapshot.strictTransportSecurity }
    /// `[[routes]]` of the configuration in force: what each request needs.
    package var routes: RouteTable { self.snapshot.routes }
    /// What this loop answers requests with; replaced as a whole (by `apply`, or by the
    /// server once the handlers that read its own per-loop state exist), which publishes
    /// a new snapshot.
    package var handlers: LoopHandlers {
        get { self.snapshot.handlers }
        set { self.snapshot = self.snapshot.replacing(handlers: newValue) }
    }

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
        self.connectionDeadlines = ConnectionDeadlines(eventLoop: eventLoop, clock: clock)
        self.connector = connector
        self.snapshot = LoopSnapshot(
            configuration: configuration,
            pool: UpstreamPool(
                eventLoop: eventLoop,
                settings: configuration.upstream,
                connector: connector,
                tls: tls.upstream,
                logger: logger,
                clock: clock
            ),
            tls: tls,
            logger: logger,
            handlers: handlers
        )
        self.rateLimiter = rateLimiter
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
        let previous = self.snapshot
        var pool = previous.pool
        if configuration.upstream != previous.configuration.upstream || tls.upstream !== previous.tls.upstream {
            pool.retire()
            pool = UpstreamPool(
                eventLoop: self.eventLoop,
                settings: configuration.upstream,
                connector: self.connector,
                tls: tls.upstream,
                logger: logger,
                clock: self.clock
            )
        }
        self.snapshot = LoopSnapshot(
            configuration: configuration,
            pool: pool,
            tls: tls,
            logger: logger,
            handlers: handlers
        )
    }

    /// Closes idle upstream connections (shutdown).
    package func shutdown() {
        self.eventLoop.preconditionInEventLoop()
        self.pool.retire()
    }

    /// Idle upstream connections kept by this loop (for tests and metrics).
    package var idleUpstreamConnections: Int { self.pool.idleCount }
}
