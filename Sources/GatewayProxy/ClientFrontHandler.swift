import GatewayCore
package import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// The first handler of a client connection, doing at the byte level what the HTTP handlers
/// behind it cannot, in one hop:
///
/// - **Read-ahead**: keeps the socket in the loop's epoll interest set while the handlers
///   behind hold their reads, holding what arrives meanwhile (at most one read cycle) until
///   they ask again; see `ReadAheadState` for why and for the bound. It changes no byte and
///   no order: held bytes go on before later bytes and before the end of the client's input,
///   and are dropped when the connection closes before anyone asked for them.
/// - **Idle and head timeouts**: the idle timeout runs while the connection waits for a
///   request and no byte has arrived; from the first byte the header timeout runs until the
///   `ProxyHandler` reports a complete head (`ConnectionPhaseEvent`). A slow head is answered
///   with a raw 408 JSON response before closing; an idle connection is closed silently, as
///   keep-alive peers expect. The deadlines live in the loop's `ConnectionDeadlines` (one
///   sweep per loop, no timer per connection).
/// - **NUL check**: while a head is being read, a NUL inside an `Authorization` line (a
///   truncation attack on C-string credential checks) is answered with a 401 naming the
///   credential problem; any other NUL is left to the HTTP parser's 400.
/// - While its connection waits for a request head (idle or reading one) it is listed in its
///   loop's `WaitingConnections`, which may close it to admit a new connection when
///   `[server] max_connections` is reached.
/// - **Drain**: a quiesce (`ChannelShouldQuiesceEvent`) reaches the HTTP handlers behind at
///   once on a connection that served a request, and on one that did not only once its first
///   request head arrived (`FirstRequestDrainState` says why).
///
/// On a plain connection one handler does all of this. On a TLS connection the read-ahead
/// must see the socket's bytes (in front of TLS: ciphertext, including a `close_notify`,
/// stays held like any other input) while the rest must see plaintext and answer through
/// TLS, so two are added: `.readAhead` in front of the TLS handler, `.requestHeads` behind
/// it. One or two per client connection; touched only on its channel's event loop.
package final class ClientFrontHandler: ChannelDuplexHandler, DeadlineOwner {
    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = ByteBuffer
    package typealias OutboundIn = ByteBuffer
    package typealias OutboundOut = ByteBuffer

    /// What one instance does.
    package struct Roles: OptionSet, Sendable {
        package let rawValue: UInt8
        package init(rawValue: UInt8) { self.rawValue = rawValue }

        /// Keeps the socket readable (must be the pipeline's first handler).
        package static let readAhead = Roles(rawValue: 1)
        /// Idle and head timeouts, the NUL check, the waiting list (must see plaintext).
        package static let requestHeads = Roles(rawValue: 2)
        package static let all: Roles = [.readAhead, .requestHeads]
    }

    /// The settings of the `.requestHeads` role.
    package struct HeadSettings {
        let idleTimeout: TimeAmount
        let headerTimeout: TimeAmount
        let deadlines: ConnectionDeadlines
        /// nil: this connection is never closed to make room for another.
        let waiting: WaitingConnections?

        package init(
            idleTimeout: TimeAmount,
            headerTimeout: TimeAmount,
            deadlines: ConnectionDeadlines,
            waiting: WaitingConnections? = nil
        ) {
            self.idleTimeout = idleTimeout
            self.headerTimeout = headerTimeout
            self.deadlines = deadlines
            self.waiting = waiting
        }
    }

    private enum Phase: UInt8 {
        case idle
        case readingHead
        case busy
    }

    private var context: ChannelHandlerContext?
    // Read-ahead.
    private let readsAhead: Bool
    private var readAhead = ReadAheadState()
    /// Reading on its own is only right for a channel that reads by itself (auto-read).
    private var autoRead = true
    // Request heads: stored field by field, so the hot path reads them without copying
    // (and retaining) a settings value.
    private let watchesHeads: Bool
    private let idleTimeout: TimeAmount
    private let headerTimeout: TimeAmount
    private let deadlines: ConnectionDeadlines?
    private let waiting: WaitingConnections?
    private var phase: Phase = .idle
    private var deadlineSlot: Int?
    private var waitingSlot: Int?
    private var drain = FirstRequestDrainState()

    /// - Parameters:
    ///   - roles: `.all` on a plain connection; `.readAhead` and `.requestHeads` around TLS.
    ///   - heads: required by `.requestHeads`.
    package init(roles: Roles = .all, heads: HeadSettings?) {
        precondition(!roles.contains(.requestHeads) || heads != nil, "the requestHeads role needs its settings")
        self.readsAhead = roles.contains(.readAhead)
        let heads = roles.contains(.requestHeads) ? heads : nil
        self.watchesHeads = heads != nil
        self.idleTimeout = heads?.idleTimeout ?? .zero
        self.headerTimeout = heads?.headerTimeout ?? .zero
        self.deadlines = heads?.deadlines
        self.waiting = heads?.waiting
    }

    // MARK: lifecycle

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if self.readsAhead {
            self.autoRead = (try? context.channel.syncOptions?.getOption(ChannelOptions.autoRead)) ?? true
        }
        if self.watchesHeads {
            self.deadlineSlot = self.deadlines?.register(self)
            self.waitingSlot = self.waiting?.register(self)
            if context.channel.isActive {
                self.enterIdle()
            }
        }
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        if self.readsAhead {
            self.passOnHeld(context: context)
        }
        self.forgetDeadlineAndWaiting()
        self.context = nil
    }

    package func channelActive(context: ChannelHandlerContext) {
        if self.watchesHeads {
            self.enterIdle()
        }
        context.fireChannelActive()
    }

    package func channelInactive(context: ChannelHandlerContext) {
        // Held bytes nobody asked for die with the connection, as they would have in the
        // kernel: a request behind a response that closed the connection is never acted on.
        self.readAhead.dropHeld()
        self.forgetDeadlineAndWaiting()
        context.fireChannelInactive()
    }

    // MARK: read-ahead

    package func read(context: ChannelHandlerContext) {
        guard self.readsAhead else {
            context.read()
            return
        }
        switch self.readAhead.readRequested() {
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

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard self.readsAhead else {
            self.passOn(self.unwrapInboundIn(data), context: context)
            return
        }
        if self.readAhead.bytesArrived() {
            self.passOn(self.unwrapInboundIn(data), context: context)
        } else {
            self.readAhead.hold(self.unwrapInboundIn(data))
        }
    }

    package func channelReadComplete(context: ChannelHandlerContext) {
        guard self.readsAhead else {
            context.fireChannelReadComplete()
            return
        }
        switch self.readAhead.readCycleEnded() {
        case .passOnAndContinue:
            context.fireChannelReadComplete()
            self.continueReading(context: context)
        case .passOn:
            context.fireChannelReadComplete()
        case .hold:
            break
        }
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if self.readsAhead, let event = event as? ChannelEvent, event == .inputClosed {
            self.passOnHeld(context: context)
        }
        if self.watchesHeads, event is ChannelShouldQuiesceEvent, !self.drain.quiesceRequested() {
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func deliverHeld() {
        guard let context, let held = self.readAhead.takeForDelivery() else { return }
        self.passOn(held, context: context)
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
        if self.readAhead.readsAheadOfDemand {
            context.read()
        }
    }

    private func passOnHeld(context: ChannelHandlerContext) {
        guard let held = self.readAhead.takeBeforeOtherEvents() else { return }
        self.passOn(held, context: context)
        context.fireChannelReadComplete()
    }

    // MARK: request heads

    /// Bytes go on to the handlers behind, past the head checks.
    private func passOn(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        if self.watchesHeads, self.phase != .busy {
            if self.phase == .idle {
                self.phase = .readingHead
                self.arm(self.headerTimeout)
            }
            if Self.hasNULInAuthorizationLine(buffer) {
                self.enterBusy()
                self.writeRaw(.unauthorized("The Authorization header contains a NUL byte."), context: context)
                return
            }
        }
        context.fireChannelRead(self.wrapInboundOut(buffer))
    }

    package func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?)
    {
        guard self.watchesHeads, let phaseEvent = event as? ConnectionPhaseEvent else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        switch phaseEvent {
        case .awaitingRequest:
            self.enterIdle()
        case .requestHeadReceived:
            self.enterBusy()
            if self.drain.requestHeadReceived() {
                // Delivered after this head has reached the HTTP handlers, so they quiesce in
                // the middle of its exchange: they answer it and then close.
                let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
                context.eventLoop.execute {
                    bound.value.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
                }
            }
        }
        promise?.succeed(())
    }

    /// Closes this connection for a new one (`max_connections` reached), if it still waits
    /// for a request head; silently, like an idle timeout: under that pressure a 408 would
    /// only keep the slot longer. Returns whether it closed.
    func closeWhileWaiting() -> Bool {
        guard let context, self.watchesHeads, self.phase != .busy else { return false }
        self.enterBusy()
        self.forgetWaiting()
        context.close(promise: nil)
        return true
    }

    func deadlinePassed() {
        guard let context else { return }
        switch self.phase {
        case .idle:
            context.close(promise: nil)
        case .readingHead:
            self.writeRaw(.headerReadTimeout, context: context)
        case .busy:
            break
        }
    }

    private func enterIdle() {
        guard self.watchesHeads else { return }
        self.phase = .idle
        self.arm(self.idleTimeout)
        if let slot = self.waitingSlot { self.waiting?.startedWaiting(slot) }
    }

    private func enterBusy() {
        guard self.watchesHeads else { return }
        self.phase = .busy
        if let slot = self.deadlineSlot { self.deadlines?.cancel(slot) }
        if let slot = self.waitingSlot { self.waiting?.stoppedWaiting(slot) }
    }

    private func arm(_ timeout: TimeAmount) {
        guard let slot = self.deadlineSlot else { return }
        self.deadlines?.arm(slot, in: timeout)
    }

    private func forgetDeadlineAndWaiting() {
        if let slot = self.deadlineSlot {
            self.deadlineSlot = nil
            self.deadlines?.unregister(slot)
        }
        self.forgetWaiting()
    }

    private func forgetWaiting() {
        if let token = self.waitingSlot {
            self.waitingSlot = nil
            self.waiting?.unregister(token)
        }
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
}

extension ClientFrontHandler {
    /// Adds the front of a client connection to `channel`: one handler in front of
    /// everything on a plain connection; on a TLS one (`behindTLS`, its TLS handler already
    /// added) the read-ahead in front of it and the rest behind it. Returns the handler that
    /// sees request heads (and their `ConnectionPhaseEvent`s). On the channel's event loop.
    static func add(to channel: any Channel, loop: LoopContext, behindTLS: Bool) throws -> ClientFrontHandler {
        let server = loop.configuration.server
        let heads = HeadSettings(
            idleTimeout: server.idleTimeout.timeAmount,
            headerTimeout: server.headerTimeout.timeAmount,
            deadlines: loop.connectionDeadlines,
            waiting: loop.waitingConnections
        )
        let sync = channel.pipeline.syncOperations
        guard behindTLS else {
            let front = ClientFrontHandler(roles: .all, heads: heads)
            try sync.addHandler(front, position: .first)
            return front
        }
        try sync.addHandler(ClientFrontHandler(roles: .readAhead, heads: nil), position: .first)
        let front = ClientFrontHandler(roles: .requestHeads, heads: heads)
        try sync.addHandler(front)
        return front
    }
}
