import GatewayConfig
package import NIOCore

/// Builds the handler chain of one accepted client connection: `ClientFrontHandler` (first;
/// on a TLS listener its read-ahead in front of the TLS handler already added, the rest
/// behind it) → `ClientRequestDecoder` (the strict HTTP/1 parser, with the header-size
/// limits; it also holds a pipelined request until the one before it is answered) →
/// `ProxyHandler` (which writes every response as bytes, `ClientResponseWriter`). No NIO HTTP
/// codec. Called on the connection's event loop.
package enum ProxyPipeline {
    /// Returns the front handler that sees request heads (behind TLS on a TLS listener).
    @discardableResult
    package static func configure(
        channel: any Channel,
        loop: LoopContext,
        clientScheme: String = "http"
    ) throws -> ClientFrontHandler {
        let server = loop.configuration.server
        let sync = channel.pipeline.syncOperations
        let front = try ClientFrontHandler.add(to: channel, loop: loop, behindTLS: clientScheme == "https")
        let decoder = ClientRequestDecoder(limits: ClientRequestDecoder.limits(maxHeaderBytes: server.maxHeaderBytes))
        try sync.addHandler(decoder)
        try sync.addHandler(ProxyHandler(loop: loop, clientScheme: clientScheme, decoder: decoder))
        return front
    }
}
