import GatewayHTTP1
import NIOCore

/// Decodes a client connection's bytes with the strict `HTTP1RequestParser` into the raw
/// `ClientRequestPart`s `ProxyHandler` consumes, and answers pipelined requests strictly in
/// order.
///
/// Pipelining: once a request's end was delivered, nothing of the next request is parsed or
/// delivered until `ProxyHandler` says the response ended (`responseEnded`); meanwhile the
/// socket is not asked for more reads, so what waits is at most the reads already under way
/// (the parser keeps those bytes). A refusal is therefore found, and fired as a
/// `ClientRequestRefusal`, only after the responses still owed. A request whose body is still
/// being read when its response ends keeps being delivered, then the next one follows.
///
/// After a request that closes the connection or switches protocols nothing more is decoded
/// (an upgrade also quiesces the connection, so it ends once that request is answered).
/// `ChannelShouldQuiesceEvent`: an idle connection closes now; a busy one delivers the rest of
/// its current request and nothing after it, and `ProxyHandler` is told (so its response says
/// `Connection: close` and the connection closes once it is written).
///
/// Responses pass it as the bytes `ProxyHandler` writes (`ClientResponseWriter`), untouched.
///
/// Sits between `ClientFrontHandler` and `ProxyHandler`. One per client connection;
/// touched only on its channel's event loop.
final class ClientRequestDecoder: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ClientRequestPart
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var parser: HTTP1RequestParser
    private var context: ChannelHandlerContext?
    /// The last head decoded asks to switch protocols.
    private var upgrading = false
    /// A head was delivered and its end not yet.
    private var requestOpen = false
    /// A request (or a refusal) was delivered and its response has not ended.
    private var responseOwed = false
    /// A read was asked for while the next request had to wait.
    private var readPending = false
    private var quiescing = false
    /// The connection closes after the current response: nothing more is delivered.
    private var stopped = false
    /// `deliver` is running (further up the stack).
    private var delivering = false

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

    /// A request's end was delivered and its response is still owed: the next waits.
    private var waitingForResponse: Bool {
        self.responseOwed && !self.requestOpen
    }

    /// No read is asked of the socket: a complete request waits for its response, or the
    /// connection ends after the current request.
    private var readsHeld: Bool {
        self.waitingForResponse || self.stopped || (self.quiescing && !self.requestOpen)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    // MARK: inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Bytes after a refusal, a `Connection: close` request or an upgrade are never parsed.
        guard !self.parser.isStopped else { return }
        self.parser.feed(self.unwrapInboundIn(data))
        self.deliver(context: context)
    }

    /// Hands on what the parser has, up to the end of a request whose response is owed.
    /// Returns whether anything was delivered.
    /// Not reentrant: a response that ends while a request is being delivered (answered at
    /// once, e.g. from a cache) lets the loop already running go on, so a long run of such
    /// pipelined requests never deepens the stack.
    @discardableResult
    private func deliver(context: ChannelHandlerContext) -> Bool {
        guard !self.delivering else { return false }
        self.delivering = true
        defer { self.delivering = false }
        var delivered = false
        while !self.readsHeld, let event = self.parser.next() {
            delivered = true
            switch event {
            case .head(let head):
                self.requestOpen = true
                self.responseOwed = true
                self.upgrading = head.isUpgrade
                context.fireChannelRead(self.wrapInboundOut(.head(head)))
            case .body(let buffer):
                context.fireChannelRead(self.wrapInboundOut(.body(buffer)))
            case .end:
                // Request trailers are dropped, not filtered: the gateway decides on the
                // head, and some upstream frameworks merge trailers into the headers, where
                // a trailer could forge identity, forwarding or credential fields.
                self.requestOpen = false
                context.fireChannelRead(self.wrapInboundOut(.end))
                if self.upgrading {
                    // What follows is not HTTP/1: the connection ends after this request.
                    self.quiesce(context: context)
                }
            case .error(let error):
                self.requestOpen = false
                self.responseOwed = true
                context.fireErrorCaught(ClientRequestRefusal(error: error, request: self.parser.refusedRequest))
            }
        }
        return delivered
    }

    /// The response to the oldest request owed was written in full (`ProxyHandler`'s
    /// `endResponse`): the next pipelined request may be delivered, and reads resume.
    /// `closing`: the connection closes after that response, so nothing more is delivered.
    func responseEnded(closing: Bool = false) {
        self.responseOwed = false
        if closing {
            self.stopped = true
            return
        }
        guard let context else { return }
        if self.deliver(context: context) {
            context.fireChannelReadComplete()
        }
        if self.readPending, !self.readsHeld {
            self.readPending = false
            context.read()
        }
    }

    func read(context: ChannelHandlerContext) {
        if self.readsHeld {
            self.readPending = true
        } else {
            context.read()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            self.quiesce(context: context)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func quiesce(context: ChannelHandlerContext) {
        guard !self.quiescing else { return }
        self.quiescing = true
        guard self.requestOpen || self.responseOwed else {
            // Idle: no response is owed, so nothing is lost by closing now.
            context.close(promise: nil)
            return
        }
        // `ProxyHandler` answers the current request with `Connection: close` and closes.
        context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
    }
}
