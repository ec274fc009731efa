import GatewayConfig
import GatewayCore
import GatewayTLS
import Logging
package import NIOCore

/// Opens a TCP connection to the upstream on a given event loop and runs `initializer`
/// on the new channel before it is used. The server module supplies it (it owns
/// NIOPosix); tests supply their own.
package typealias UpstreamConnector =
    @Sendable (
        _ eventLoop: any EventLoop,
        _ host: String,
        _ port: Int,
        _ connectTimeout: TimeAmount,
        _ initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<any Channel>

/// The keep-alive connections of one event loop to one upstream.
///
/// For an `https://` upstream each new connection gets a client `TLSHandler` in front of
/// the HTTP handlers and is handed out only once its handshake succeeded (certificate
/// verified against `[upstream] tls_server_name` or the URL's host); a failed handshake
/// fails the acquisition with a 502 `upstream_tls_error` and logs OpenSSL's reason.
///
/// Idle connections are reused most-recently-used first (warm TCP windows, and the
/// least-used ones age out), capped at `maxIdleConnectionsPerLoop`, and closed after the
/// upstream idle timeout. A retired pool (after a reload changed the upstream) closes
/// its idle connections at once and every lent connection when it comes back.
/// Owned by a `LoopContext`; touched only on its event loop.
final class UpstreamPool {
    let eventLoop: any EventLoop
    let settings: UpstreamSettings
    private let connector: UpstreamConnector
    /// The client context for an https upstream; nil for http.
    private let tls: TLSContext?
    private let logger: Logger
    /// Idle ages are measured on its monotonic view.
    private let clock: GatewayClock
    private var idle: [UpstreamConnection] = []
    private(set) var isRetired = false
    private var sweepTask: RepeatedTask?
    private(set) var openConnections = 0

    init(
        eventLoop: any EventLoop,
        settings: UpstreamSettings,
        connector: @escaping UpstreamConnector,
        tls: TLSContext? = nil,
        logger: Logger = Logger(label: "dbaudit-gateway.upstream", factory: { _ in SwiftLogNoOpLogHandler() }),
        clock: GatewayClock
    ) {
        self.clock = clock
        self.eventLoop = eventLoop
        self.settings = settings
        self.connector = connector
        self.tls = tls
        self.logger = logger
    }

    var idleCount: Int { self.idle.count }

    /// Hands `completion` an idle live connection (synchronously), or a new one once it
    /// is connected.
    func acquire(_ completion: @escaping (Result<UpstreamConnection, any Error>) -> Void) {
        self.eventLoop.preconditionInEventLoop()
        while let connection = self.idle.popLast() {
            if connection.isUsable {
                completion(.success(connection))
                return
            }
            connection.close()
        }
        self.connect(completion)
    }

    /// Returns a connection after an exchange. Only a connection whose exchange ended
    /// cleanly (`reusable`) goes back to the idle list.
    func release(_ connection: UpstreamConnection, reusable: Bool) {
        self.eventLoop.preconditionInEventLoop()
        guard reusable, !self.isRetired, connection.isUsable,
            self.idle.count < self.settings.maxIdleConnectionsPerLoop
        else {
            connection.close()
            return
        }
        self.idle.append(connection)
        self.startSweeping()
    }

    /// Closes idle connections and makes every later release close its connection.
    func retire() {
        self.eventLoop.preconditionInEventLoop()
        self.isRetired = true
        self.sweepTask?.cancel()
        self.sweepTask = nil
        let idle = self.idle
        self.idle.removeAll()
        for connection in idle {
            connection.close()
        }
    }

    private func connect(_ completion: @escaping (Result<UpstreamConnection, any Error>) -> Void) {
        let connection = UpstreamConnection(
            responseTimeout: self.settings.responseTimeout.timeAmount,
            clock: self.clock
        )
        let loopBound = NIOLoopBound(connection, eventLoop: self.eventLoop)
        let tls = self.tls
        let serverName = self.settings.effectiveTLSServerName
        let handshakeTimeout = self.settings.connectTimeout.timeAmount
        let future = self.connector(
            self.eventLoop,
            self.settings.host,
            self.settings.port,
            self.settings.connectTimeout.timeAmount
        ) { channel in
            do {
                if let tls {
                    // First in the pipeline: the handlers below it speak plaintext.
                    _ = try TLSHandler.addClient(
                        to: channel,
                        context: tls,
                        serverName: serverName,
                        handshakeTimeout: handshakeTimeout
                    )
                    loopBound.value.readGuard.tls = try channel.pipeline.syncOperations.handler(type: TLSHandler.self)
                }
                // It sees every byte the upstream sends, as read, before the connection does.
                try channel.pipeline.syncOperations.addHandler(loopBound.value.readGuard)
                // No HTTP codec: the connection writes requests as bytes and parses the
                // responses itself (`HTTP1ResponseParser`).
                try channel.pipeline.syncOperations.addHandler(loopBound.value)
                return channel.eventLoop.makeSucceededVoidFuture()
            } catch {
                return channel.eventLoop.makeFailedFuture(error)
            }
        }
        future.assumeIsolated().whenComplete { result in
            guard case .success(let channel) = result else {
                completion(result.map { _ in connection })
                return
            }
            guard self.tls != nil else {
                self.connected(connection, completion)
                return
            }
            guard let handshake = try? channel.pipeline.syncOperations.handler(type: TLSHandler.self).handshakeFuture
            else {
                channel.close(promise: nil)
                completion(.failure(GatewayError.upstreamTLSFailed))
                return
            }
            handshake.assumeIsolated().whenComplete { outcome in
                switch outcome {
                case .success:
                    self.connected(connection, completion)
                case .failure(let error):
                    let tlsError = error as? TLSError
                    self.logger.warning(
                        "upstream TLS handshake failed",
                        metadata: [
                            "upstream": "\(self.settings.url)",
                            "server_name": "\(self.settings.effectiveTLSServerName)",
                            "reason": "\(tlsError?.description ?? "\(error)")",
                        ]
                    )
                    channel.close(promise: nil)
                    completion(
                        .failure(
                            tlsError?.kind == .certificateVerificationFailed
                                ? GatewayError.upstreamCertificateInvalid : GatewayError.upstreamTLSFailed
                        )
                    )
                }
            }
        }
    }

    private func connected(
        _ connection: UpstreamConnection,
        _ completion: @escaping (Result<UpstreamConnection, any Error>) -> Void
    ) {
        self.openConnections += 1
        connection.onClose = { [weak self] closed in
            guard let self else { return }
            self.openConnections -= 1
            if let index = self.idle.firstIndex(where: { $0 === closed }) {
                self.idle.remove(at: index)
            }
        }
        completion(.success(connection))
    }

    private func startSweeping() {
        guard self.sweepTask == nil else { return }
        let interval = TimeAmount.milliseconds(max(250, self.settings.idleTimeout.timeAmount.nanoseconds / 4_000_000))
        let loopBound = NIOLoopBound(self, eventLoop: self.eventLoop)
        self.sweepTask = self.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { task in
            loopBound.value.sweep(task: task)
        }
    }

    private func sweep(task: RepeatedTask) {
        let cutoff = self.clock.now() - self.settings.idleTimeout.timeAmount
        var keep: [UpstreamConnection] = []
        for connection in self.idle {
            if connection.idleSince < cutoff || !connection.isUsable {
                connection.close()
            } else {
                keep.append(connection)
            }
        }
        self.idle = keep
        if self.idle.isEmpty {
            task.cancel()
            self.sweepTask = nil
        }
    }
}
