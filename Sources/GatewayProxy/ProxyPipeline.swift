import GatewayConfig
package import NIOCore

/// Builds the handler chain of one accepted client connection: `ReadAheadHandler` (first,
/// in front of any TLS handler already added) → `RequestHeadTimeoutHandler` →
/// `ClientRequestDecoder` (the strict HTTP/1 parser, with the header-size limits; it also holds
/// a pipelined request until the one before it is answered) → `ProxyHandler` (which writes
/// every response as bytes, `ClientResponseWriter`). No NIO HTTP codec. Called on the
/// connection's event loop.
package enum ProxyPipeline {
    package static func configure(
        channel: any Channel,
        loop: LoopContext,
        clientScheme: String = "http"
    ) throws {
        let server = loop.configuration.server
        let sync = channel.pipeline.syncOperations
        // At the socket: the handlers behind hold their reads for every exchange, and this
        // keeps the socket in the epoll interest set meanwhile (no `epoll_ctl` per request).
        try sync.addHandler(ReadAheadHandler(), position: .first)
        try sync.addHandler(
            RequestHeadTimeoutHandler(
                idleTimeout: server.idleTimeout.timeAmount,
                headerTimeout: server.headerTimeout.timeAmount,
                waiting: loop.waitingConnections
            )
        )
        let decoder = ClientRequestDecoder(limits: ClientRequestDecoder.limits(maxHeaderBytes: server.maxHeaderBytes))
        try sync.addHandler(decoder)
        try sync.addHandler(ProxyHandler(loop: loop, clientScheme: clientScheme, decoder: decoder))
    }
}
