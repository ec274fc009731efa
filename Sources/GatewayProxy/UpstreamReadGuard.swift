import GatewayTLS
import NIOCore

/// The byte-level gate in front of an upstream connection's response parser.
///
/// Bytes arriving while no response is expected (an idle pooled connection, or after a
/// response ended) spoil the connection at once, through `onUnexpectedInput`, so it is
/// unusable before any close completes (a TLS close waits for close_notify). Bytes after a
/// response's end within one read stay in the connection's parser, which never reads them as
/// the next response (`HTTP1ResponseParser.bufferedBytes`), and spoil the connection too.
///
/// A response that ends exactly where a read ended is reusable only if nothing more can be
/// waiting: not after a read that filled its buffer (NIO stops after a few full reads per
/// wakeup, leaving the rest in the kernel), and not while the TLS layer holds part of a
/// record (`inputMayFollow`).
///
/// Owned by one upstream channel's pipeline and steered by its `UpstreamConnection`; touched
/// only on that channel's event loop.
final class UpstreamReadGuard: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// Set while an exchange waits for (the rest of) its response.
    var expectingResponse = false
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

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = self.unwrapInboundIn(data)
        self.lastReadFilledBuffer = buffer.writableBytes == 0
        guard self.expectingResponse else {
            // Nothing was asked for: the upstream is out of sync, or trying to be.
            if buffer.readableBytes > 0 {
                self.unexpectedInput(context: context)
            }
            return
        }
        context.fireChannelRead(data)
    }

    private func unexpectedInput(context: ChannelHandlerContext) {
        if let onUnexpectedInput {
            onUnexpectedInput()
        } else {
            context.close(promise: nil)
        }
    }
}
