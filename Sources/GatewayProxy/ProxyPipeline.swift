import GatewayConfig
package import NIOCore
import NIOHTTP1

/// Builds the handler chain of one accepted client connection: `ReadAheadHandler` (first,
/// in front of any TLS handler already added) → `RequestHeadTimeoutHandler` → `RequestFramingGuard` → NIO HTTP/1 server codec (with the header-size limit and
/// pipelining assistance, which answers pipelined requests strictly in order) →
/// `ProxyHandler`. Called on the connection's event loop.
package enum ProxyPipeline {
    package static func configure(
        channel: any Channel,
        loop: LoopContext,
        clientScheme: String = "http"
    ) throws {
        let server = loop.configuration.server
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderListSize = server.maxHeaderBytes
        limits.maxHeaderFieldSize = server.maxHeaderBytes
        limits.maxHeaderFieldCount = 256
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
        // In front of the decoder: chunk extensions and trailers are bounded like headers.
        try sync.addHandler(
            RequestFramingGuard(
                maxChunkLineBytes: server.maxHeaderBytes,
                maxTrailerBytes: server.maxHeaderBytes + 8 * 1024
            )
        )
        try sync.configureHTTPServerPipeline(
            withPipeliningAssistance: true,
            withErrorHandling: false,
            // Response heads are the upstream's (parsed strictly by llhttp) plus the
            // gateway's own fixed headers: a second validation pass is not needed.
            withOutboundHeaderValidation: false,
            withEncoderConfiguration: HTTPResponseEncoder.Configuration(),
            withDecoderLimitConfiguration: limits
        )
        try sync.addHandler(ProxyHandler(loop: loop, clientScheme: clientScheme))
    }
}
