import GatewayCore
package import NIOCore

/// Drops connections that idle too long between requests or send a request head too
/// slowly (slowloris), the first byte-level handler of a client pipeline.
///
/// It counts time, not bytes: the idle timeout runs while a connection waits for a
/// request and no byte has arrived; from the first byte the header timeout runs until the
/// `ProxyHandler` reports a complete head. A slow head is answered with a raw 408 JSON
/// response before closing; an idle connection is closed silently, as keep-alive peers
/// expect. Lives on its channel's event loop.
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
    private var timer: Scheduled<Void>?
    private var generation: UInt64 = 0
    private var context: ChannelHandlerContext?

    package init(idleTimeout: TimeAmount, headerTimeout: TimeAmount) {
        self.idleTimeout = idleTimeout
        self.headerTimeout = headerTimeout
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive {
            self.enterIdle()
        }
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        self.cancel()
        self.context = nil
    }

    package func channelActive(context: ChannelHandlerContext) {
        self.enterIdle()
        context.fireChannelActive()
    }

    package func channelInactive(context: ChannelHandlerContext) {
        self.cancel()
        context.fireChannelInactive()
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .idle = self.phase {
            self.phase = .readingHead
            self.arm(self.headerTimeout, onFire: .headTimedOut)
        }
        context.fireChannelRead(data)
    }

    package func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let phaseEvent = event as? ConnectionPhaseEvent else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        switch phaseEvent {
        case .awaitingRequest:
            self.enterIdle()
        case .requestHeadReceived:
            self.phase = .busy
            self.cancel()
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
    }

    private func arm(_ delay: TimeAmount, onFire expiry: Expiry) {
        guard let context else { return }
        self.cancel()
        let generation = self.generation
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.timer = context.eventLoop.scheduleTask(in: delay) {
            loopBound.value.fire(expiry, generation: generation)
        }
    }

    private func cancel() {
        self.generation &+= 1
        self.timer?.cancel()
        self.timer = nil
    }

    private func fire(_ expiry: Expiry, generation: UInt64) {
        guard generation == self.generation, let context else { return }
        self.timer = nil
        switch expiry {
        case .idleTimedOut:
            context.close(promise: nil)
        case .headTimedOut:
            var ids = RequestIDGenerator()
            let requestID = ids.next()
            let body = GatewayError.headerReadTimeout.jsonBody(requestID: requestID)
            var buffer = context.channel.allocator.buffer(capacity: body.utf8.count + 220)
            buffer.writeString(
                "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n"
                    + "cache-control: no-store\r\nx-request-id: \(requestID)\r\nconnection: close\r\n\r\n"
            )
            buffer.writeString(body)
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(self.wrapOutboundOut(buffer)).whenComplete { _ in
                loopBound.value.close(promise: nil)
            }
        }
    }
}
