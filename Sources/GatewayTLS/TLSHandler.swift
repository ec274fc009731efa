package import NIOCore

/// Events the `TLSHandler` sends down the pipeline (`userInboundEventTriggered`).
package enum TLSUserEvent: Sendable, Hashable {
    /// The handshake finished; application data flows from now on.
    case handshakeCompleted(TLSHandshakeInfo)
}

/// TLS on a NIO channel: decrypts inbound bytes, encrypts outbound ones, runs the
/// handshake and the `close_notify` exchange. It only executes what `TLSConnection`
/// decides; the design follows swift-nio-ssl's `NIOSSLHandler` on the host's OpenSSL.
///
/// - Writes issued before the handshake completes are queued and sent after it; small
///   writes of one flush are coalesced into one TLS record (an HTTP head and a short body
///   become one record, as nginx sends them).
/// - The handshake must finish within `handshakeTimeout`; a close sends `close_notify` and
///   waits at most `shutdownTimeout` for the peer's before closing the socket.
/// - A stream that ends without `close_notify` is reported with `errorCaught`
///   (`TLSError.Kind.uncleanShutdown`) before `channelInactive`; so is every failure.
///
/// One per channel; touched only on that channel's event loop. The `SSL*` is freed when
/// the handler is removed (channel closed), the `SSL_CTX` when its last user goes.
package final class TLSHandler: ChannelDuplexHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = ByteBuffer
    package typealias OutboundIn = ByteBuffer
    package typealias OutboundOut = ByteBuffer

    /// Plaintext of one flush is packed into records of at most this many bytes.
    private static let coalescingLimit = 16 * 1024
    /// Large writes are encrypted in slices so the outbound BIO never holds a whole body.
    private static let encryptionSlice = 256 * 1024

    private var connection: TLSConnection?
    private var context: ChannelHandlerContext?
    private let handshakeTimeout: TimeAmount
    private let shutdownTimeout: TimeAmount
    /// Plaintext written and not yet encrypted (before the handshake, or until the flush).
    private var pendingWrites = CircularBuffer<(buffer: ByteBuffer, promise: EventLoopPromise<Void>?)>(
        initialCapacity: 4
    )
    private var handshakePromise: EventLoopPromise<TLSHandshakeInfo>?
    private var closePromise: EventLoopPromise<Void>?
    private var handshakeTimer: Scheduled<Void>?
    private var shutdownTimer: Scheduled<Void>?
    /// Bumped whenever a timer is cancelled, so one that fires anyway does nothing.
    private var timerGeneration: UInt64 = 0
    /// Inside `processInbound`: a re-entrant call (a write during channelRead that
    /// triggers a read) must not start a second loop over the same BIO.
    private var processingInbound = false
    /// The last read from the socket filled its buffer: the kernel may hold more.
    private var lastReadFilledBuffer = false
    /// Ciphertext was written by `sendCiphertext(flush: false)` and awaits a flush.
    private var wroteSinceFlush = false

    /// - Parameters:
    ///   - mode: `.server`, or `.client(serverName:)` whose certificate is verified
    ///     against that name.
    ///   - handshakeTimeout: from the channel becoming active to the handshake's end.
    ///   - shutdownTimeout: how long a close waits for the peer's `close_notify`.
    package init(
        context: TLSContext,
        mode: TLSConnection.Mode,
        handshakeTimeout: TimeAmount = .seconds(10),
        shutdownTimeout: TimeAmount = .seconds(3)
    ) throws(TLSError) {
        self.connection = try TLSConnection(context: context, mode: mode)
        self.handshakeTimeout = handshakeTimeout
        self.shutdownTimeout = shutdownTimeout
    }

    /// Succeeds with the handshake's result, or fails with its `TLSError`. Available once
    /// the handler is in a pipeline.
    package private(set) var handshakeFuture: EventLoopFuture<TLSHandshakeInfo>?

    // MARK: lifecycle

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let promise = context.eventLoop.makePromise(of: TLSHandshakeInfo.self)
        self.handshakePromise = promise
        self.handshakeFuture = promise.futureResult
        if context.channel.isActive {
            self.startHandshake(context: context)
        }
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        self.cancelTimers()
        let error = TLSError(.closed, reasons: ["the TLS handler was removed"])
        self.failPendingWrites(error)
        self.handshakePromise?.fail(error)
        self.handshakePromise = nil
        self.closePromise?.succeed(())
        self.closePromise = nil
        self.connection = nil  // frees the SSL*
        self.context = nil
    }

    package func channelActive(context: ChannelHandlerContext) {
        self.startHandshake(context: context)
        context.fireChannelActive()
    }

    private func startHandshake(context: ChannelHandlerContext) {
        guard var connection = self.connection else { return }
        let action = connection.startHandshake()
        self.connection = connection
        switch action {
        case .startedHandshake:
            self.armHandshakeTimer(context: context)
            self.sendCiphertext(context: context, flush: true)
        case .none:
            break
        case .failed(let error):
            self.fail(error, context: context)
        }
    }

    package func channelInactive(context: ChannelHandlerContext) {
        self.cancelTimers()
        if var connection = self.connection {
            let action = connection.endOfStream()
            self.connection = connection
            switch action {
            case .none:
                break
            case .uncleanShutdown(let error):
                self.handshakePromise?.fail(error)
                self.handshakePromise = nil
                self.failPendingWrites(error)
                context.fireErrorCaught(error)
            }
        }
        let closed = TLSError(.closed, reasons: ["the connection is closed"])
        self.failPendingWrites(closed)
        self.handshakePromise?.fail(closed)
        self.handshakePromise = nil
        self.closePromise?.succeed(())
        self.closePromise = nil
        context.fireChannelInactive()
    }

    /// Whether input may follow what was handed on so far: bytes OpenSSL buffers (part of
    /// a record), or more in the kernel after a read that filled its buffer. A connection
    /// whose response ended while this holds must not be reused.
    package var inputMayFollow: Bool {
        self.lastReadFilledBuffer || (self.connection?.hasBufferedInput ?? false)
    }

    // MARK: inbound

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = self.unwrapInboundIn(data)
        // NIO keeps reading only while reads fill their buffer (up to its per-wakeup cap).
        self.lastReadFilledBuffer = buffer.writableBytes == 0
        guard var connection = self.connection else { return }
        connection.receive(buffer)
        self.connection = connection
        self.processInbound(context: context)
    }

    private func processInbound(context: ChannelHandlerContext) {
        guard !self.processingInbound else { return }
        self.processingInbound = true
        defer { self.processingInbound = false }
        // Ciphertext written during the loop (handshake messages taken together with the
        // first queued writes) must be flushed even if the BIO is empty at the end.
        var mustFlush = false
        loop: while var connection = self.connection {
            let action = connection.nextInbound(allocator: context.channel.allocator)
            self.connection = connection
            switch action {
            case .needMoreData, .closed:
                break loop
            case .handshakeCompleted(let info):
                self.cancelTimers()
                // Handshake messages (a client's Finished, a server's tickets) stay first in
                // the outbound BIO: queued writes are encrypted after them.
                mustFlush = true
                self.handshakePromise?.succeed(info)
                self.handshakePromise = nil
                context.fireUserInboundEventTriggered(TLSUserEvent.handshakeCompleted(info))
                self.encryptPendingWrites(context: context)
            case .plaintext(let plaintext):
                context.fireChannelRead(self.wrapInboundOut(plaintext))
            case .peerClosed:
                self.sendCiphertext(context: context, flush: true)
                self.failPendingWrites(TLSError(.closed, reasons: ["the peer sent close_notify"]))
                context.close(promise: nil)
                break loop
            case .shutdownCompleted:
                self.cancelTimers()
                let promise = self.closePromise
                self.closePromise = nil
                context.close(promise: promise)
                break loop
            case .failed(let error):
                self.fail(error, context: context)
                break loop
            }
        }
        self.sendCiphertext(context: context, flush: false)
        if mustFlush || self.wroteSinceFlush {
            self.wroteSinceFlush = false
            context.flush()
        }
    }

    // MARK: outbound

    package func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffer = self.unwrapOutboundIn(data)
        guard let connection = self.connection else {
            promise?.fail(TLSError(.closed, reasons: ["the connection is closed"]))
            return
        }
        switch connection.state {
        case .failed(let error):
            promise?.fail(error)
            return
        case .closing, .closed:
            // After close_notify nothing more can be sent; the write fails quietly (the
            // connection is already on its way down).
            promise?.fail(TLSError(.closed, reasons: ["write after close_notify"]))
            return
        case .idle, .handshaking, .active:
            self.pendingWrites.append((buffer, promise))
        }
    }

    package func flush(context: ChannelHandlerContext) {
        guard let connection = self.connection else { return }
        // Before the handshake: the queued writes are encrypted and flushed once it is done.
        guard connection.isHandshakeComplete else { return }
        self.encryptPendingWrites(context: context)
        context.flush()
    }

    package func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode != .input else {
            context.close(mode: mode, promise: promise)
            return
        }
        if let closing = self.closePromise {
            if let promise { closing.futureResult.cascade(to: promise) }
            return
        }
        guard var connection = self.connection else {
            context.close(promise: promise)
            return
        }
        // Whatever the application wrote before closing goes out before close_notify.
        if connection.isHandshakeComplete {
            self.encryptPendingWrites(context: context)
        }
        let action = connection.close()
        self.connection = connection
        switch action {
        case .sendCloseNotify:
            let closing = promise ?? context.eventLoop.makePromise()
            self.closePromise = closing
            self.sendCiphertext(context: context, flush: true)
            self.armShutdownTimer(context: context)
        case .closeChannel:
            self.cancelTimers()
            self.failPendingWrites(TLSError(.closed, reasons: ["the connection was closed"]))
            self.sendCiphertext(context: context, flush: true)
            context.close(promise: promise)
        case .alreadyClosing:
            if let promise { promise.succeed(()) }
        }
    }

    /// Encrypts every queued write, packing small ones into shared records, and writes
    /// the ciphertext with the writes' promises (not flushed).
    private func encryptPendingWrites(context: ChannelHandlerContext) {
        guard !self.pendingWrites.isEmpty else { return }
        var group: ByteBuffer?
        var groupPromises: [EventLoopPromise<Void>] = []
        while let (buffer, promise) = self.pendingWrites.popFirst() {
            if buffer.readableBytes <= Self.coalescingLimit - (group?.readableBytes ?? 0) {
                if group == nil {
                    group = buffer
                } else {
                    group!.writeImmutableBuffer(buffer)
                }
                if let promise { groupPromises.append(promise) }
                continue
            }
            if let pending = group {
                group = nil
                guard self.encrypt(pending, promises: groupPromises, context: context) else { return }
                groupPromises.removeAll(keepingCapacity: true)
            }
            if buffer.readableBytes <= Self.coalescingLimit {
                group = buffer
                if let promise { groupPromises.append(promise) }
            } else {
                guard self.encrypt(buffer, promises: promise.map { [$0] } ?? [], context: context) else { return }
            }
        }
        if let pending = group {
            _ = self.encrypt(pending, promises: groupPromises, context: context)
        }
    }

    /// False if the connection failed (everything pending was failed with it).
    private func encrypt(
        _ plaintext: ByteBuffer,
        promises: [EventLoopPromise<Void>],
        context: ChannelHandlerContext
    ) -> Bool {
        var remaining = plaintext
        repeat {
            let slice = remaining.readSlice(length: min(remaining.readableBytes, Self.encryptionSlice))!
            guard var connection = self.connection else {
                for promise in promises { promise.fail(TLSError(.closed)) }
                return false
            }
            let action = connection.write(slice)
            self.connection = connection
            switch action {
            case .encrypted:
                break
            case .queue:
                // Only reached before the handshake, where nothing is encrypted.
                preconditionFailure("encrypting before the handshake completed")
            case .failed(let error):
                for promise in promises { promise.fail(error) }
                self.fail(error, context: context)
                return false
            }
            let last = remaining.readableBytes == 0
            guard let ciphertext = connection.takeOutboundCiphertext(allocator: context.channel.allocator) else {
                if last { for promise in promises { promise.succeed(()) } }
                continue
            }
            if last {
                context.write(self.wrapOutboundOut(ciphertext), promise: Self.combine(promises, on: context.eventLoop))
            } else {
                context.write(self.wrapOutboundOut(ciphertext), promise: nil)
            }
        } while remaining.readableBytes > 0
        return true
    }

    private static func combine(
        _ promises: [EventLoopPromise<Void>],
        on eventLoop: any EventLoop
    ) -> EventLoopPromise<Void>? {
        switch promises.count {
        case 0: return nil
        case 1: return promises[0]
        default:
            let combined = eventLoop.makePromise(of: Void.self)
            for promise in promises { combined.futureResult.cascade(to: promise) }
            return combined
        }
    }

    /// Writes (and optionally flushes) whatever ciphertext OpenSSL produced.
    private func sendCiphertext(context: ChannelHandlerContext, flush: Bool) {
        guard let connection = self.connection,
            let ciphertext = connection.takeOutboundCiphertext(allocator: context.channel.allocator)
        else { return }
        context.write(self.wrapOutboundOut(ciphertext), promise: nil)
        if flush {
            self.wroteSinceFlush = false
            context.flush()
        } else {
            self.wroteSinceFlush = true
        }
    }

    // MARK: failures and timers

    /// A fatal error: the alert OpenSSL queued (if any) goes out, pending writes fail, the
    /// pipeline hears the error, the socket closes without close_notify.
    private func fail(_ error: TLSError, context: ChannelHandlerContext) {
        self.cancelTimers()
        self.sendCiphertext(context: context, flush: true)
        self.failPendingWrites(error)
        self.handshakePromise?.fail(error)
        self.handshakePromise = nil
        context.fireErrorCaught(error)
        let promise = self.closePromise
        self.closePromise = nil
        context.close(promise: promise)
    }

    private func failPendingWrites(_ error: TLSError) {
        while let (_, promise) = self.pendingWrites.popFirst() {
            promise?.fail(error)
        }
    }

    private func armHandshakeTimer(context: ChannelHandlerContext) {
        let generation = self.timerGeneration
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.handshakeTimer = context.eventLoop.scheduleTask(in: self.handshakeTimeout) {
            handler.value.handshakeTimerFired(generation: generation)
        }
    }

    private func handshakeTimerFired(generation: UInt64) {
        guard generation == self.timerGeneration, let context, var connection = self.connection else { return }
        let error = connection.handshakeTimedOut()
        self.connection = connection
        if let error {
            self.fail(error, context: context)
        }
    }

    private func armShutdownTimer(context: ChannelHandlerContext) {
        self.handshakeTimer?.cancel()
        self.handshakeTimer = nil
        let generation = self.timerGeneration
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.shutdownTimer = context.eventLoop.scheduleTask(in: self.shutdownTimeout) {
            handler.value.shutdownTimerFired(generation: generation)
        }
    }

    private func shutdownTimerFired(generation: UInt64) {
        guard generation == self.timerGeneration, let context, var connection = self.connection else { return }
        let expired = connection.shutdownTimedOut()
        self.connection = connection
        if expired {
            let promise = self.closePromise
            self.closePromise = nil
            context.close(promise: promise)
        }
    }

    private func cancelTimers() {
        self.timerGeneration &+= 1
        self.handshakeTimer?.cancel()
        self.handshakeTimer = nil
        self.shutdownTimer?.cancel()
        self.shutdownTimer = nil
    }
}

extension TLSHandler {
    /// Puts a client-mode `TLSHandler` first in `channel`'s pipeline (before any protocol
    /// codec) and returns the handshake's result. For upstream connections and outbound
    /// calls to identity providers. Call on the channel's event loop (e.g. from a
    /// bootstrap's channel initializer).
    package static func addClient(
        to channel: any Channel,
        context: TLSContext,
        serverName: String?,
        handshakeTimeout: TimeAmount = .seconds(10)
    ) throws -> EventLoopFuture<TLSHandshakeInfo> {
        let handler = try TLSHandler(
            context: context,
            mode: .client(serverName: serverName),
            handshakeTimeout: handshakeTimeout
        )
        try channel.pipeline.syncOperations.addHandler(handler, position: .first)
        return handler.handshakeFuture!
    }
}
