import GatewayCore
package import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Drops connections that idle too long between requests or send a request head too
/// slowly (slowloris), the first byte-level handler of a client pipeline.
///
/// It counts time, not bytes: the idle timeout runs while a connection waits for a
/// request and no byte has arrived; from the first byte the header timeout runs until the
/// `ProxyHandler` reports a complete head. A slow head is answered with a raw 408 JSON
/// response before closing; an idle connection is closed silently, as keep-alive peers
/// expect.
///
/// While a head is being read it also looks for NUL bytes: a NUL inside an
/// `Authorization` line (a truncation attack on C-string credential checks) is answered
/// with a 401 naming the credential problem; any other NUL is left to the HTTP parser's
/// 400.
///
/// While its connection waits for a request head (idle or reading one) it is listed in its
/// loop's `WaitingConnections`, which may close it to admit a new connection when
/// `[server] max_connections` is reached. Lives on its channel's event loop.
package final class RequestHeadTimeoutHandler: ChannelDuplexHandler {
    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = ByteBuffer
    package typealias OutboundIn = ByteBuffer
    package typealias OutboundOut = ByteBuffer

    private enum Phase {
        case idle
        case readingHead
        case busy
    }

    private let idleTimeout: TimeAmount
    private let headerTimeout: TimeAmount
    private var phase: Phase = .idle
    private lazy var timeout = LoopTimer { [weak self] in self?.timedOut() }
    private var expiry: Expiry = .idleTimedOut
    private var context: ChannelHandlerContext?
    private let waiting: WaitingConnections?
    private var waitingToken: UInt64?

    /// - Parameter waiting: the loop's list of connections waiting for a head; nil: this
    ///   connection is never closed to make room for another.
    package init(idleTimeout: TimeAmount, headerTimeout: TimeAmount, waiting: WaitingConnections? = nil) {
        self.idleTimeout = idleTimeout
        self.headerTimeout = headerTimeout
        self.waiting = waiting
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.waitingToken = self.waiting?.register(self)
        if context.channel.isActive {
            self.enterIdle()
        }
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        self.timeout.cancel()
        self.forgetWaiting()
        self.context = nil
    }

    package func channelActive(context: ChannelHandlerContext) {
        self.enterIdle()
        context.fireChannelActive()
    }

    package func channelInactive(context: ChannelHandlerContext) {
        self.timeout.cancel()
        self.forgetWaiting()
        context.fireChannelInactive()
    }

    /// Closes this connection for a new one (`max_connections` reached), if it still waits
    /// for a request head; silently, like an idle timeout: under that pressure a 408 would
    /// only keep the slot longer. Returns whether it closed.
    func closeWhileWaiting() -> Bool {
        guard let context, self.phase != .busy else { return false }
        self.enterBusy()
        self.forgetWaiting()
        context.close(promise: nil)
        return true
    }

    private func forgetWaiting() {
        if let token = self.waitingToken {
            self.waitingToken = nil
            self.waiting?.unregister(token)
        }
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .idle = self.phase {
            self.phase = .readingHead
            self.arm(self.headerTimeout, onFire: .headTimedOut)
        }
        if case .readingHead = self.phase {
            let buffer = self.unwrapInboundIn(data)
            if Self.hasNULInAuthorizationLine(buffer) {
                self.enterBusy()
                let error = GatewayError.unauthorized("The Authorization header contains a NUL byte.")
                self.writeRaw(error, context: context)
                return
            }
        }
        context.fireChannelRead(data)
    }

    /// Whether `buffer` has a NUL byte on a line that starts with `Authorization:`.
    static func hasNULInAuthorizationLine(_ buffer: ByteBuffer) -> Bool {
        buffer.withUnsafeReadableBytes { bytes in
            guard let base = bytes.baseAddress, memchr(base, 0, bytes.count) != nil else { return false }
            var lineStart = 0
            for index in 0..<bytes.count {
                if bytes[index] == UInt8(ascii: "\n") {
                    lineStart = index + 1
                } else if bytes[index] == 0 {
                    let name = Array("authorization:".utf8)
                    guard index - lineStart >= name.count else { continue }
                    var matches = true
                    for offset in 0..<name.count {
                        let byte = bytes[lineStart + offset]
                        let folded = byte >= 65 && byte <= 90 ? byte | 0x20 : byte
                        if folded != name[offset] {
                            matches = false
                            break
                        }
                    }
                    if matches { return true }
                }
            }
            return false
        }
    }

    private func writeRaw(_ error: GatewayError, context: ChannelHandlerContext) {
        var ids = RequestIDGenerator()
        let requestID = ids.next()
        let response = LocalResponse.json(error, requestID: requestID)
        let body = response.body
        let head = OwnResponseHead.text(
            status: error.status,
            fields: OwnResponseHead.fields(
                for: response,
                requestID: requestID,
                close: true,
                strictTransportSecurity: nil
            )
        )
        var buffer = context.channel.allocator.buffer(capacity: head.utf8.count + body.count)
        buffer.writeString(head)
        buffer.writeBytes(body)
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(self.wrapOutboundOut(buffer)).whenComplete { _ in
            loopBound.value.close(promise: nil)
        }
    }

    package func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?)
    {
        guard let phaseEvent = event as? ConnectionPhaseEvent else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        switch phaseEvent {
        case .awaitingRequest:
            self.enterIdle()
        case .requestHeadReceived:
            self.enterBusy()
        }
        promise?.succeed(())
    }

    private enum Expiry {
        case idleTimedOut
        case headTimedOut
    }

    private func enterIdle() {
        self.phase = .idle
        self.arm(self.idleTimeout, onFire: .idleTimedOut)
        if let token = self.waitingToken { self.waiting?.startedWaiting(token) }
    }

    private func enterBusy() {
        self.phase = .busy
        self.cancel()
        if let token = self.waitingToken { self.waiting?.stoppedWaiting(token) }
    }

    private func arm(_ delay: TimeAmount, onFire expiry: Expiry) {
        guard let context else { return }
        self.expiry = expiry
        self.timeout.arm(in: delay, on: context.eventLoop)
    }

    private func cancel() {
        self.timeout.disarm()
    }

    private func timedOut() {
        self.fire(self.expiry)
    }

    private func fire(_ expiry: Expiry) {
        guard let context else { return }
        switch expiry {
        case .idleTimedOut:
            context.close(promise: nil)
        case .headTimedOut:
            self.writeRaw(.headerReadTimeout, context: context)
        }
    }
}
