import GatewayProxy
import NIOCore

/// Holds the drain's `ChannelShouldQuiesceEvent` back from a connection that has not sent
/// its first request yet.
///
/// Quiescing closes an idle connection at once. That is safe for a keep-alive connection
/// that already served a request (a client retries an idempotent request when a reused
/// connection closes before any response byte, RFC 9112 §9.3.1), but not for a connection
/// accepted a moment before the listener closed: its client has sent, or is about to send,
/// its first request and would see the connection fail. Such a connection is therefore
/// quiesced once its first request head arrives (`ConnectionPhaseEvent.requestHeadReceived`
/// on its way from `ProxyHandler` to the `ClientFrontHandler`): that request is served
/// and the connection closes after the response. One that never sends anything is closed by
/// its idle timeout or by the drain timeout.
///
/// Sits right behind the `ClientFrontHandler` that sees request heads. One per client connection; touched only on
/// its channel's event loop.
final class FirstRequestDrainGate: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var state = DrainGateState()

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        if self.state.quiesceRequested() {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        if case .requestHeadReceived? = event as? ConnectionPhaseEvent, self.state.requestHeadReceived() {
            // Delivered after this head has reached the HTTP handlers, so they quiesce in the
            // middle of its exchange: they answer it and then close.
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.eventLoop.execute {
                bound.value.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            }
        }
        context.triggerUserOutboundEvent(event, promise: promise)
    }
}

/// The decision of `FirstRequestDrainGate`: whether a quiesce goes through now, or when the
/// first request head arrives. A value owned by one gate, on its channel's event loop.
struct DrainGateState {
    private var servedAHead = false
    private var holding = false

    /// The drain began. Returns whether to pass the quiesce on now.
    mutating func quiesceRequested() -> Bool {
        if self.servedAHead { return true }
        self.holding = true
        return false
    }

    /// A request head arrived. Returns whether a held quiesce must now be delivered.
    mutating func requestHeadReceived() -> Bool {
        self.servedAHead = true
        defer { self.holding = false }
        return self.holding
    }
}
