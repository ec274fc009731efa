import NIOCore

/// Keeps a client socket in the loop's epoll interest set while the handlers behind it
/// hold their reads, holding what arrives meanwhile (at most one read cycle) until they
/// ask again; see `ReadAheadState` for why and for the bound.
///
/// The first handler of a client pipeline (in front of TLS, so it sees what the socket
/// read). It changes no byte and no order: held bytes go on before later bytes and before
/// the end of the client's input (NIO hands on everything it reads up to an end of file),
/// and are dropped when the connection closes before anyone asked for them. One per client
/// connection; touched only on its channel's event loop.
final class ReadAheadHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var state = ReadAheadState()
    private var context: ChannelHandlerContext?
    /// Reading on its own is only right for a channel that reads by itself (auto-read).
    private var autoRead = true

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.autoRead = (try? context.channel.syncOptions?.getOption(ChannelOptions.autoRead)) ?? true
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.passOnHeld(context: context)
        self.context = nil
    }

    func read(context: ChannelHandlerContext) {
        switch self.state.readRequested() {
        case .readSocket:
            context.read()
        case .scheduleDelivery:
            // Not from inside `read()`: the handler that asked may be in the middle of a
            // state change (it resumes reading before writing a response's end).
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            context.eventLoop.execute {
                bound.value.deliverHeld()
            }
        case .none:
            break
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if self.state.bytesArrived() {
            context.fireChannelRead(data)
        } else {
            self.state.hold(self.unwrapInboundIn(data))
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        switch self.state.readCycleEnded() {
        case .passOnAndContinue:
            context.fireChannelReadComplete()
            self.continueReading(context: context)
        case .passOn:
            context.fireChannelReadComplete()
        case .hold:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // Held bytes nobody asked for die with the connection, as they would have in the
        // kernel: a request behind a response that closed the connection is never acted on.
        self.state.dropHeld()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            self.passOnHeld(context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func deliverHeld() {
        guard let context, let held = self.state.takeForDelivery() else { return }
        context.fireChannelRead(self.wrapInboundOut(held))
        context.fireChannelReadComplete()
        self.continueReading(context: context)
    }

    /// After a cycle that delivered bytes: NIO's auto-read asks the pipeline for more only
    /// when no read is pending, and this handler keeps one pending, so it asks in NIO's
    /// place. Whatever the handlers behind answer, the socket stays readable unless bytes
    /// are held.
    private func continueReading(context: ChannelHandlerContext) {
        guard self.autoRead else { return }
        context.pipeline.syncOperations.read()
        if self.state.readsAheadOfDemand {
            context.read()
        }
    }

    private func passOnHeld(context: ChannelHandlerContext) {
        guard let held = self.state.takeBeforeOtherEvents() else { return }
        context.fireChannelRead(self.wrapInboundOut(held))
        context.fireChannelReadComplete()
    }
}
