import GatewayConfig
package import NIOCore
import NIOHTTP1

/// Builds the handler chain of one accepted client connection: `ClientFrontHandler` (first;
/// on a TLS listener its read-ahead in front of the TLS handler already added, the rest
/// behind it) → NIO's response
/// encoder → `ClientRequestDecoder` (the strict HTTP/1 parser, with the header-size limits) →
/// NIO's pipelining assistance (answers pipelined requests strictly in order) →
/// `ProxyHandler`. Called on the connection's event loop.
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
        // Response heads are the upstream's (parsed strictly) plus the gateway's own fixed
        // headers: no second validation pass.
        try sync.addHandler(HTTPResponseEncoder(configuration: HTTPResponseEncoder.Configuration()))
        let decoder = ClientRequestDecoder(limits: ClientRequestDecoder.limits(maxHeaderBytes: server.maxHeaderBytes))
        try sync.addHandler(decoder)
        try sync.addHandler(HTTPServerPipelineHandler())
        try sync.addHandler(ProxyHandler(loop: loop, clientScheme: clientScheme, decoder: decoder))
        return front
    }
}
