import GatewayHTTP1
import NIOCore
import NIOHTTP1

/// Decodes a client connection's bytes with the strict `HTTP1RequestParser` into the
/// `HTTPServerRequestPart`s the rest of the pipeline consumes, and writes the response bytes
/// `ProxyHandler` makes (`ClientResponseWriter`).
///
/// A refusal is fired as an `HTTPParserError` so NIO's pipelining handler orders it after
/// the responses still owed; the parser's own reason stays in `failure` for `ProxyHandler`
/// to answer with the right status. After a request that closes the connection or switches
/// protocols nothing more is decoded (an upgrade also quiesces the connection, so it ends
/// once that request is answered).
///
/// Outbound, the response parts arriving through NIO's pipelining handler (which orders
/// pipelined requests by them) carry raw bytes: a marker head, the bytes as body parts, an
/// end. Only the bytes are written; an interim `100 Continue` head becomes its status line.
///
/// Sits between `RequestHeadTimeoutHandler` and `HTTPServerPipelineHandler`. One per client
/// connection; touched only on its channel's event loop.
final class ClientRequestDecoder: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = ByteBuffer

    private var parser: HTTP1RequestParser
    /// Why the parser refused the input, once it did.
    private(set) var failure: HTTP1ParseError?
    /// The last head decoded asks to switch protocols.
    private var upgrading = false
    private var quiesced = false

    /// The connection is draining (shutdown, or after an upgrade request): every response
    /// says `Connection: close`.
    var isQuiescing: Bool { self.quiesced }

    init(limits: HTTP1ParserLimits) {
        self.parser = HTTP1RequestParser(limits: limits)
    }

    /// The parser's bounds for `[server] max_header_bytes` (see docs/configuration.md): the
    /// raw head may exceed the limit by `headSlack` bytes, for the request line's method and
    /// version and the field lines' separators and CRLFs, which NIO's decoder did not count.
    static func limits(maxHeaderBytes: Int) -> HTTP1ParserLimits {
        HTTP1ParserLimits(
            maxHeadBytes: maxHeaderBytes + Self.headSlack,
            maxHeaderCount: 256,
            maxChunkLineBytes: maxHeaderBytes,
            maxTrailerBytes: maxHeaderBytes + 8 * 1024
        )
    }

    static let headSlack = 768

    // MARK: inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Bytes after a refusal, a `Connection: close` request or an upgrade are never parsed.
        guard !self.parser.isStopped else { return }
        self.parser.feed(self.unwrapInboundIn(data))
        while let event = self.parser.next() {
            switch event {
            case .head(let head):
                self.upgrading = head.isUpgrade
                context.fireChannelRead(self.wrapInboundOut(.head(Self.requestHead(head))))
            case .body(let buffer):
                context.fireChannelRead(self.wrapInboundOut(.body(buffer)))
            case .end(let trailers):
                context.fireChannelRead(self.wrapInboundOut(.end(trailers.map(Self.headers))))
                if self.upgrading {
                    // What follows is not HTTP/1: the connection ends after this request.
                    self.quiesce(context: context)
                }
            case .error(let error):
                self.failure = error
                context.fireErrorCaught(Self.parserError(error))
            }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            // NIO's pipelining handler expects one quiesce per connection.
            self.quiesce(context: context)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func quiesce(context: ChannelHandlerContext) {
        guard !self.quiesced else { return }
        self.quiesced = true
        context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
    }

    // MARK: outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch self.unwrapOutboundIn(data) {
        case .head(let head):
            guard head.status == .continue else {
                // The marker in front of a response's bytes.
                promise?.succeed()
                return
            }
            let interim = ClientResponseWriter.continueHead(allocator: context.channel.allocator)
            context.write(self.wrapOutboundOut(interim), promise: promise)
        case .body(.byteBuffer(let buffer)):
            context.write(self.wrapOutboundOut(buffer), promise: promise)
        case .body(.fileRegion):
            preconditionFailure("responses are written as bytes")
        case .end:
            // Completed in order with the bytes written before it.
            context.write(self.wrapOutboundOut(context.channel.allocator.buffer(capacity: 0)), promise: promise)
        }
    }

    // MARK: conversions

    static func requestHead(_ head: HTTP1RequestHead) -> HTTPRequestHead {
        var headers = HTTPHeaders()
        headers.reserveCapacity(head.fields.count)
        for field in head.fields {
            headers.add(name: head.string(field.name), value: head.string(field.value))
        }
        return HTTPRequestHead(
            version: HTTPVersion(major: 1, minor: head.minorVersion),
            method: HTTPMethod(rawValue: head.method.rawValue),
            uri: head.string(head.target),
            headers: headers
        )
    }

    static func headers(_ trailers: HTTP1Trailers) -> HTTPHeaders {
        HTTPHeaders(trailers.fields.map { (trailers.string($0.name), trailers.string($0.value)) })
    }

    /// The NIO error standing for `error` in the pipeline (the pipelining handler orders only
    /// those); `failure` keeps the precise reason.
    static func parserError(_ error: HTTP1ParseError) -> HTTPParserError {
        switch error {
        case .headTooLarge, .tooManyHeaderFields, .trailersTooLarge: .headerOverflow
        case .invalidContentLength, .duplicateContentLength, .contentLengthWithTransferEncoding:
            .invalidContentLength
        case .invalidChunkSize, .invalidChunkExtension, .chunkLineTooLong: .invalidChunkSize
        case .invalidMethod, .connectNotSupported: .invalidMethod
        case .unsupportedVersion: .invalidVersion
        default: .unknown
        }
    }
}
