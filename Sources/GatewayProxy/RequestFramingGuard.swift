import NIOCore
import NIOHTTP1

/// Byte-level handler in front of the HTTP decoder that refuses a chunk-size line or a
/// trailer section longer than the header limit, which the parser would otherwise skip
/// for as long as the client sends it. The refusal is an `HTTPParserError` so the
/// pipelining handler orders it after the responses still owed, and `ProxyHandler`
/// answers it with a 400 like any other framing error.
///
/// When the scanner can no longer follow the framing (a real upgrade or CONNECT, framing
/// the parser will refuse), the guard sends `ChannelShouldQuiesceEvent` right after the
/// bytes of the request being read, so the pipelining handler and `ProxyHandler` answer
/// that request and close: a later request on the connection is never served unbounded.
///
/// One per client connection; touched only on its channel's event loop.
final class RequestFramingGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private var scanner: RequestFramingScanner
    private var refused = false
    private var quiesced = false

    init(maxChunkLineBytes: Int, maxTrailerBytes: Int) {
        self.scanner = RequestFramingScanner(maxChunkLineBytes: maxChunkLineBytes, maxTrailerBytes: maxTrailerBytes)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // After a refusal nothing more is parsed: the connection closes once the 400 is out.
        guard !self.refused else { return }
        guard !self.scanner.isPassingThrough else {
            context.fireChannelRead(data)
            return
        }
        var buffer = self.unwrapInboundIn(data)
        switch buffer.withUnsafeReadableBytes({ self.scanner.scan($0) }) {
        case .accept:
            context.fireChannelRead(data)
        case .tooLong(let offset):
            self.refused = true
            if offset > 0, let head = buffer.readSlice(length: offset) {
                context.fireChannelRead(self.wrapInboundOut(head))
            }
            context.fireErrorCaught(HTTPParserError.invalidChunkSize)
        case .stopFollowing(let offset):
            if offset > 0, let head = buffer.readSlice(length: offset) {
                context.fireChannelRead(self.wrapInboundOut(head))
            }
            self.quiesce(context: context)
            if buffer.readableBytes > 0 {
                context.fireChannelRead(self.wrapInboundOut(buffer))
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
}
