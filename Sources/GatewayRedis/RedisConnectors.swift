package import GatewayConfig
import GatewayTLS
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The production `RedisConnector`: TCP (Nagle off) or a Unix socket, with the
/// configured connect timeout, and with `[redis] tls` the gateway's own TLS client in
/// front of the RESP handler (the future completes once the handshake has verified the
/// server's certificate against `ca_file` and the host or `tls_server_name`).
package enum RedisConnectors {
    package static let posix: RedisConnector = { eventLoop, endpoint, tls, connectTimeout, initializer in
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
        switch endpoint {
        case .tcp(let host, let port):
            guard let tls else {
                return
                    bootstrap
                    .channelInitializer(initializer)
                    .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                    .channelOption(.socketOption(.so_keepalive), value: 1)
                    .connect(host: host, port: port)
            }
            let context: TLSContext
            do {
                context = try contexts.context(for: tls)
            } catch {
                return eventLoop.makeFailedFuture(RedisClientError.tls("\(error)"))
            }
            let handshake = NIOLockedValueBox<EventLoopFuture<TLSHandshakeInfo>?>(nil)
            return
                bootstrap
                .channelInitializer { channel in
                    do {
                        let done = try TLSHandler.addClient(
                            to: channel,
                            context: context,
                            serverName: tls.serverName ?? host,
                            handshakeTimeout: connectTimeout
                        )
                        handshake.withLockedValue { $0 = done }
                        try channel.pipeline.syncOperations.addHandler(TLSFailureTranslator())
                    } catch {
                        return channel.eventLoop.makeFailedFuture(RedisClientError.tls("\(error)"))
                    }
                    return initializer(channel)
                }
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelOption(.socketOption(.so_keepalive), value: 1)
                .connect(host: host, port: port)
                .flatMap { channel in
                    guard let done = handshake.withLockedValue({ $0 }) else {
                        return channel.eventLoop.makeFailedFuture(RedisClientError.tls("no handshake"))
                    }
                    return done.map { _ in channel }.flatMapError { error in
                        channel.close(promise: nil)
                        return channel.eventLoop.makeFailedFuture(RedisClientError.tls("\(error)"))
                    }
                }
        case .unix(let path):
            return bootstrap.channelInitializer(initializer).connect(unixDomainSocketPath: path)
        }
    }

    /// Turns a TLS failure after the handshake (a TLS 1.3 server refusing the client
    /// certificate sends its alert then) into `RedisClientError.tls`, so the RESP handler
    /// fails the waiting commands with OpenSSL's reason instead of a bare "connection
    /// closed". Sits between the TLS handler and the RESP handler; on the channel's loop.
    final class TLSFailureTranslator: ChannelInboundHandler, Sendable {
        typealias InboundIn = NIOAny

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            if let failure = error as? TLSError {
                context.fireErrorCaught(RedisClientError.tls(failure.description))
            } else {
                context.fireErrorCaught(error)
            }
        }
    }

    /// Client TLS contexts per `[redis]` TLS settings, built on first use and kept (a
    /// context reads its CA and certificate files once). Reached on connects only.
    private static let contexts = TLSContexts()

    /// See `contexts`. Any thread.
    final class TLSContexts: Sendable {
        private let built = NIOLockedValueBox<[RedisSettings.TLS: TLSContext]>([:])

        func context(for settings: RedisSettings.TLS) throws -> TLSContext {
            try self.built.withLockedValue { built in
                if let existing = built[settings] { return existing }
                var configuration = TLSClientConfiguration(caFile: settings.caFile)
                // RESP has no ALPN name: offer none.
                configuration.applicationProtocols = []
                if let certificate = settings.clientCertificateFile, let key = settings.clientKeyFile {
                    configuration.certificate = TLSCertificateSource(
                        certificateChainFile: certificate,
                        privateKeyFile: key
                    )
                }
                let context = try TLSContext.client(configuration)
                built[settings] = context
                return context
            }
        }
    }

    /// Builds the TLS context of `settings` now (off the event loops, at start-up), so a
    /// bad CA or key file is reported before the first connection and no loop reads files.
    package static func prepare(_ settings: RedisSettings) throws {
        if let tls = settings.tls {
            _ = try contexts.context(for: tls)
        }
    }
}
