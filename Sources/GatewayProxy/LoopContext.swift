package import GatewayConfig
import GatewayCore
package import Logging
package import NIOCore

/// Everything one event loop needs to serve requests: the configuration snapshot in
/// force, the upstream pool, the loggers.
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
    /// Client connections currently open on this loop.
    package internal(set) var openClientConnections = 0

    package init(
        eventLoop: any EventLoop,
        configuration: GatewayConfiguration,
        connector: @escaping UpstreamConnector,
        logger: Logger
    ) {
        self.eventLoop = eventLoop
        self.configuration = configuration
        self.connector = connector
        self.logger = logger
        self.accessLog = AccessLog(logger: logger, enabled: configuration.logging.accessLog)
        self.pool = UpstreamPool(eventLoop: eventLoop, settings: configuration.upstream, connector: connector)
    }

    /// Switches this loop to `configuration`. A changed upstream gets a fresh pool; the old
    /// one is retired so its connections close as their exchanges end.
    package func apply(_ configuration: GatewayConfiguration, logger: Logger) {
        self.eventLoop.preconditionInEventLoop()
        if configuration.upstream != self.configuration.upstream {
            self.pool.retire()
            self.pool = UpstreamPool(eventLoop: self.eventLoop, settings: configuration.upstream, connector: self.connector)
        }
        self.configuration = configuration
        self.logger = logger
        self.accessLog = AccessLog(logger: logger, enabled: configuration.logging.accessLog)
    }

    /// Closes idle upstream connections (shutdown).
    package func shutdown() {
        self.eventLoop.preconditionInEventLoop()
        self.pool.retire()
    }

    /// Idle upstream connections kept by this loop (for tests and metrics).
    package var idleUpstreamConnections: Int { self.pool.idleCount }
}

/// Writes the one-line-per-request access log (PRODUCT.md §10) through swift-log at
/// `info`. A value; copied into each loop's context.
package struct AccessLog {
    /// What is known about one finished request.
    package struct Entry {
        package var requestID: String
        package var method: String
        /// The path without its query (queries may carry secrets).
        package var path: String
        package var status: Int
        package var bytesIn: Int64
        package var bytesOut: Int64
        package var clientAddress: String
        /// Time from the first byte sent upstream to the response end, if it was forwarded.
        package var upstreamMicroseconds: Int64?
        package var totalMicroseconds: Int64
        /// `forwarded`, `rejected` (gateway answered), or `aborted`.
        package var outcome: String
        package var error: String?
    }

    let logger: Logger
    let enabled: Bool

    package init(logger: Logger, enabled: Bool) {
        self.logger = logger
        self.enabled = enabled
    }

    package func record(_ entry: Entry) {
        guard self.enabled else { return }
        var metadata: Logger.Metadata = [
            "log": "access",
            "request_id": .string(entry.requestID),
            "method": .string(entry.method),
            "path": .string(entry.path),
            "status": .stringConvertible(entry.status),
            "bytes_in": .stringConvertible(entry.bytesIn),
            "bytes_out": .stringConvertible(entry.bytesOut),
            "client": .string(entry.clientAddress),
            "total_us": .stringConvertible(entry.totalMicroseconds),
            "outcome": .string(entry.outcome),
        ]
        if let upstream = entry.upstreamMicroseconds {
            metadata["upstream_us"] = .stringConvertible(upstream)
        }
        if let error = entry.error {
            metadata["error"] = .string(error)
        }
        self.logger.info("request", metadata: metadata)
    }
}
