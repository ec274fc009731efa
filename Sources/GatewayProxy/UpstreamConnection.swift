import GatewayCore
import GatewayHTTP1
import NIOCore

/// Receives what one upstream exchange produces. Implemented by `ProxyHandler`; called
/// only on the shared event loop.
protocol UpstreamResponseDelegate: AnyObject {
    func upstreamResponseHead(_ head: HTTP1ResponseHead)
    func upstreamResponseBody(_ buffer: ByteBuffer)
    func upstreamResponseEnd(_ trailers: HTTP1Trailers?, keepAlive: Bool)
    func upstreamReadComplete()
    func upstreamFailed(_ error: GatewayError)
    func upstreamWritabilityChanged(isWritable: Bool)
}

/// One keep-alive HTTP/1.1 connection to the upstream, and the last handler of its
/// pipeline (after its `UpstreamReadGuard`).
///
/// Requests are written as bytes: the head `ForwardingRules` built from the client's, then
/// the body as the client sent it when it had a Content-Length, or re-chunked
/// (`size CRLF data CRLF`, then `0 CRLF CRLF`: request trailers are dropped) when the client
/// sent it chunked.
///
/// It parses the responses itself (`HTTP1ResponseParser`: the head once over its bytes, the
/// body as slices of the reads, chunked bodies de-chunked), relays them to the current
/// delegate (the client connection it is lent
/// to), enforces the upstream response timeout, and holds reads while the client cannot
/// take more data (backpressure). A response's end is handed on only when the read that
/// carried it is complete, and as reusable only if no byte followed it (see
/// `UpstreamReadGuard`): whatever an upstream sends past a response never becomes the next
/// client's answer. Lives on one event loop — the same as the client
/// connection that borrows it — and is touched only there.
final class UpstreamConnection: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        /// In the pool (or not yet lent): no exchange.
        case idle
        /// Request being sent or sent; waiting for or reading the response.
        case busy(responseHeadReceived: Bool)
        /// The response is complete; its end goes to the delegate once the read is.
        case ending(trailers: HTTP1Trailers?, reusable: Bool)
        case closed
    }

    private var state: State = .idle
    private var context: ChannelHandlerContext?
    private(set) var delegate: (any UpstreamResponseDelegate)?
    private let responseTimeout: TimeAmount
    private lazy var timeout = LoopTimer { [weak self] in self?.timedOut() }
    private var readsHeld = false
    private var readPending = false
    private var responseKeepAlive = true
    private var parser = HTTP1ResponseParser(limits: UpstreamConnection.limits)
    /// The request being sent is chunked: each body buffer gets its size line.
    private var requestChunked = false
    /// Called once when the channel closes, so the pool forgets it.
    var onClose: ((UpstreamConnection) -> Void)?
    /// When the connection went idle (for pool idle-timeout sweeps).
    private(set) var idleSince: NIODeadline
    private let clock: GatewayClock

    /// The gate in front of the parser (earlier in the same pipeline).
    let readGuard = UpstreamReadGuard()

    /// What an upstream response may be: NIO's decoder allowed heads of 80 KiB (names and
    /// values); chunk-size lines, extensions included, are bounded too.
    static let limits = HTTP1ParserLimits(
        maxHeadBytes: 96 * 1024,
        maxHeaderCount: 1024,
        maxChunkLineBytes: 4 * 1024,
        maxTrailerBytes: 80 * 1024
    )

    init(responseTimeout: TimeAmount, clock: GatewayClock) {
        self.responseTimeout = responseTimeout
        self.clock = clock
        self.idleSince = clock.now()
        self.readGuard.onUnexpectedInput = { [weak self] in self?.spoiled() }
    }

    /// Bytes came that no exchange asked for: a complete response still reaches its client,
    /// anything else fails; either way the connection is closed and never lent again.
    private func spoiled() {
        switch self.state {
        case .ending:
            self.deliverEnd(reusable: false)
            self.abort()
        case .busy:
            self.failExchange(.upstreamProtocolError)
        case .idle, .closed:
            self.abort()
        }
    }

    var channel: (any Channel)? { self.context?.channel }

    var isUsable: Bool {
        guard case .idle = self.state, let context = self.context else { return false }
        return context.channel.isActive
    }

    var isWritable: Bool { self.context?.channel.isWritable ?? false }

    // MARK: used by the client side

    /// Lends the connection to `delegate` for one exchange of a request sent with
    /// `requestMethod` (a response to HEAD has no body, whatever its head says).
    func attach(_ delegate: any UpstreamResponseDelegate, requestMethod: HTTP1Method) {
        self.delegate = delegate
        self.state = .busy(responseHeadReceived: false)
        self.responseKeepAlive = true
        self.parser.start(requestMethod: requestMethod)
        self.readGuard.expectingResponse = true
    }

    private static let lastChunk = ByteBuffer(staticString: "0\r\n\r\n")
    private static let chunkEnd = ByteBuffer(staticString: "\r\n")

    /// Writes the request head (`bytes`, request line to the empty line); `chunked` when the
    /// head frames the body so.
    func sendHead(_ bytes: ByteBuffer, chunked: Bool) {
        guard case .busy = self.state else { return }
        self.requestChunked = chunked
        self.write(bytes)
    }

    private func write(_ buffer: ByteBuffer) {
        self.context?.write(self.wrapOutboundOut(buffer), promise: nil)
    }

    /// Writes a piece of the request body (chunk data when the request is chunked).
    func sendBody(_ buffer: ByteBuffer) {
        guard self.context != nil, case .busy = self.state, buffer.readableBytes > 0 else { return }
        guard self.requestChunked else {
            self.write(buffer)
            return
        }
        var sizeLine = ByteBuffer()
        sizeLine.reserveCapacity(18)
        sizeLine.writeString(String(buffer.readableBytes, radix: 16))
        sizeLine.writeStaticString("\r\n")
        self.write(sizeLine)
        self.write(buffer)
        self.write(Self.chunkEnd)
    }

    /// The request is complete: the last chunk for a chunked one; the response clock starts.
    func sendEnd() {
        guard self.context != nil, case .busy = self.state else { return }
        if self.requestChunked {
            self.write(Self.lastChunk)
        }
        // The response clock starts once the request is fully on its way.
        self.armTimer()
    }

    func flush() {
        self.context?.flush()
    }

    /// Stops (false) or resumes (true) reading responses, for client-side backpressure.
    func setReadsAllowed(_ allowed: Bool) {
        self.readsHeld = !allowed
        if allowed, self.readPending, let context {
            self.readPending = false
            context.read()
        }
    }

    /// Ends the exchange without reuse: the connection is closed.
    func abort() {
        self.delegate = nil
        self.readGuard.expectingResponse = false
        self.cancelTimer()
        if case .closed = self.state { return }
        self.state = .closed
        self.context?.close(promise: nil)
    }

    /// Ends the exchange after a complete response; the pool may lend it again.
    func detach() {
        self.delegate = nil
        self.cancelTimer()
        self.setReadsAllowed(true)
        self.readGuard.expectingResponse = false
        switch self.state {
        case .busy, .ending:
            self.state = .idle
            self.idleSince = self.clock.now()
        case .idle, .closed:
            break
        }
    }

    /// Closes an idle connection (pool trimming, reload, shutdown).
    func close() {
        self.abort()
    }

    // MARK: ChannelHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.timeout.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .busy = self.state, self.delegate != nil else {
            // Bytes from an upstream that has no request outstanding: it is out of sync.
            self.failExchange(.upstreamProtocolError)
            return
        }
        self.parser.feed(self.unwrapInboundIn(data))
        while case .busy(let headReceived) = self.state, let delegate = self.delegate, let event = self.parser.next() {
            switch event {
            case .head(let head):
                // Interim responses were dropped by the parser (100 Continue: the gateway
                // answers `Expect` itself); 101 is a broken exchange, answered now: the
                // gateway never asks for an upgrade.
                guard head.status >= 200, !headReceived, Self.hasForwardableFraming(head) else {
                    self.failExchange(.upstreamProtocolError)
                    return
                }
                self.state = .busy(responseHeadReceived: true)
                self.responseKeepAlive = head.keepAlive
                self.armTimer()
                delegate.upstreamResponseHead(head)
            case .body(let buffer):
                self.armTimer()
                delegate.upstreamResponseBody(buffer)
            case .end(let trailers):
                self.ended(trailers)
            case .error:
                self.failExchange(.upstreamProtocolError)
                return
            }
        }
        if case .ending = self.state, self.parser.bufferedBytes > 0 {
            // Bytes followed the response in the same read: it still reaches its client,
            // and the connection is never lent again.
            self.spoiled()
        }
    }

    private func ended(_ trailers: HTTP1Trailers?) {
        self.cancelTimer()
        // Decided before anyone may reuse the connection: bytes after the end in this read
        // spoil it (they stay in the parser, never read as the next response); bytes in a
        // later read close it (the guard).
        let reusable = self.responseKeepAlive && self.parser.bufferedBytes == 0
        self.readGuard.expectingResponse = false
        self.state = .ending(trailers: trailers, reusable: reusable)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        let delegate = self.delegate
        // A response that ended where the read ended is reusable only if nothing more can
        // be waiting in the kernel or the TLS layer.
        self.deliverEnd(reusable: !self.readGuard.inputMayFollow)
        delegate?.upstreamReadComplete()
    }

    /// Hands a pending end to the delegate; `reusable: false` overrides the verdict.
    private func deliverEnd(reusable: Bool) {
        guard case .ending(let trailers, let verdict) = self.state, let delegate = self.delegate else { return }
        let keepAlive = verdict && reusable
        // Delivered once: the delegate detaches or aborts the connection in answer.
        self.state = .busy(responseHeadReceived: true)
        delegate.upstreamResponseEnd(trailers, keepAlive: keepAlive)
    }

    /// Only `chunked` may frame a response: other transfer codings (gzip...) were never
    /// offered (the client's `TE` is not forwarded), and re-chunking would hide them. One
    /// `Transfer-Encoding` field whose value is exactly `chunked`.
    static func hasForwardableFraming(_ head: HTTP1ResponseHead) -> Bool {
        var seen = false
        for field in head.fields where head.nameEquals(field, "transfer-encoding") {
            guard !seen, head.valueEquals(field, "chunked") else { return false }
            seen = true
        }
        return true
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A body that runs until the connection closes ends here.
        if case .busy(responseHeadReceived: true) = self.state, case .end(let trailers) = self.parser.finish() {
            self.ended(trailers)
        }
        // A complete response whose read never completed still ends, without reuse.
        self.deliverEnd(reusable: false)
        let wasBusy: Bool
        if case .busy = self.state { wasBusy = true } else { wasBusy = false }
        self.state = .closed
        self.readGuard.expectingResponse = false
        self.timeout.cancel()
        if wasBusy, let delegate = self.delegate {
            self.delegate = nil
            delegate.upstreamFailed(.upstreamProtocolError)
        }
        self.onClose?(self)
        self.onClose = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.failExchange(.upstreamProtocolError)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.delegate?.upstreamWritabilityChanged(isWritable: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if self.readsHeld {
            self.readPending = true
        } else {
            context.read()
        }
    }

    // MARK: timers

    private func failExchange(_ error: GatewayError) {
        if case .ending = self.state {
            // The response was complete; what came after it only spoils the connection.
            self.deliverEnd(reusable: false)
            self.abort()
            return
        }
        let delegate = self.delegate
        self.abort()
        delegate?.upstreamFailed(error)
    }

    private func armTimer() {
        guard let context else { return }
        self.timeout.arm(in: self.responseTimeout, on: context.eventLoop)
    }

    private func timedOut() {
        guard self.context != nil else { return }
        self.failExchange(.upstreamTimeout)
    }

    private func cancelTimer() {
        self.timeout.disarm()
    }
}
