import GatewayTLS
import NIOCore
import NIOHTTP1

/// The byte-level gate in front of an upstream connection's response decoder.
///
/// NIO's decoder parses a whole read in one call: a response's end fires in the middle of
/// it, and an incomplete head after that end is swallowed without a trace, to become the
/// start of the *next* exchange's response. So each read is handed on in two slices, all
/// but its last byte and then that byte: a response that ends while `moreBytesFollow` is
/// set had bytes after it, and its connection must not be reused. Bytes arriving while no
/// response is expected (an idle pooled connection, or after a response ended) spoil the
/// connection at once, through `onUnexpectedInput`, so it is unusable before any close
/// completes (a TLS close waits for close_notify).
///
/// A response that ends exactly where a read ended is reusable only if nothing more can be
/// waiting: not after a read that filled its buffer (NIO stops after a few full reads per
/// wakeup, leaving the rest in the kernel), and not while the TLS layer holds part of a
/// record (`inputMayFollow`).
///
/// It is also where the request bytes enter the pipeline: `UpstreamConnection` writes the
/// head and body it builds from the client's bytes here, past NIO's response decoder, which
/// takes only `HTTPClientRequestPart`s. That decoder still needs each request's method (a
/// response to HEAD has no body), so the connection writes it a bodiless head per request,
/// which ends here, unwritten.
///
/// The extra slice costs one more decoder call per read, never a copy. Owned by one
/// upstream channel's pipeline and steered by its `UpstreamConnection`; touched only on
/// that channel's event loop.
final class UpstreamReadGuard: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = ByteBuffer

    private var context: ChannelHandlerContext?

    /// Set while an exchange waits for (the rest of) its response.
    var expectingResponse = false
    /// True while the decoder parses a slice that more bytes of the same read follow.
    private(set) var moreBytesFollow = false
    /// The TLS layer in front of this handler, for an https upstream.
    var tls: TLSHandler?
    /// Called when bytes arrive that no exchange asked for; the connection ends itself.
    var onUnexpectedInput: (() -> Void)?
    /// The last plaintext-TCP read filled its buffer: the kernel may hold more.
    private var lastReadFilledBuffer = false

    /// Whether bytes may still come after everything handed on so far (see the type's note).
    var inputMayFollow: Bool {
        if let tls { return tls.inputMayFollow }
        return self.lastReadFilledBuffer
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Writes request bytes towards the upstream (flushed by the next flush of the channel).
    func writeRequestBytes(_ buffer: ByteBuffer) {
        self.context?.write(self.wrapOutboundOut(buffer), promise: nil)
    }

    /// The decoder's copy of a request head (for its method): already told, never sent.
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        promise?.succeed()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        self.lastReadFilledBuffer = buffer.writableBytes == 0
        guard self.expectingResponse else {
            // Nothing was asked for: the upstream is out of sync, or trying to be.
            if buffer.readableBytes > 0 {
                self.unexpectedInput(context: context)
            }
            return
        }
        let count = buffer.readableBytes
        guard count > 1, let first = buffer.readSlice(length: count - 1) else {
            context.fireChannelRead(data)
            return
        }
        self.moreBytesFollow = true
        context.fireChannelRead(self.wrapInboundOut(first))
        self.moreBytesFollow = false
        guard self.expectingResponse else {
            // The response ended with a byte still to come: the connection is spoiled.
            self.unexpectedInput(context: context)
            return
        }
        context.fireChannelRead(self.wrapInboundOut(buffer))
    }

    private func unexpectedInput(context: ChannelHandlerContext) {
        if let onUnexpectedInput {
            onUnexpectedInput()
        } else {
            context.close(promise: nil)
        }
    }
}
