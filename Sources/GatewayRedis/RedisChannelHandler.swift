package import NIOCore

/// Errors of the Redis client. The messages are for logs, never for HTTP clients.
package enum RedisClientError: Error, Hashable, Sendable {
    /// No connection to Redis (refused, lost, or in back-off after a failure).
    case unavailable
    /// A command got no reply within the command timeout.
    case timeout
    /// The connection closed with the command still waiting.
    case connectionClosed
    /// Redis sent bytes that are not RESP, or more than the client accepts.
    case protocolError(String)
    /// Redis answered with an error reply (`-ERR ...`).
    case server(String)
    /// The TLS handshake with Redis failed (OpenSSL's reason: an unknown CA, a name that
    /// does not match the certificate, ...).
    case tls(String)
}

/// One command on its way: the RESP bytes and the promise its reply completes.
package struct RedisRequest {
    package var bytes: ByteBuffer
    package var promise: EventLoopPromise<RESPValue>

    package init(bytes: ByteBuffer, promise: EventLoopPromise<RESPValue>) {
        self.bytes = bytes
        self.promise = promise
    }
}

/// The RESP codec of one Redis connection: writes commands, decodes replies with
/// hiredis, and completes the waiting promises in FIFO order (Redis answers pipelined
/// commands in order).
///
/// In subscriber mode, replies that no command waits for (pub/sub messages) go to
/// `onPush`. A protocol error fails every waiting command and closes the connection: its
/// stream position can no longer be trusted. Touched only on its channel's event loop.
package final class RedisChannelHandler: ChannelDuplexHandler {
    package typealias InboundIn = ByteBuffer
    package typealias OutboundIn = RedisRequest
    package typealias OutboundOut = ByteBuffer

    /// Bytes of one reply the handler will buffer before calling the server hostile.
    package static let maximumReplyBytes = 64 << 20

    private let reader = RESPReader()
    private var pending: CircularBuffer<EventLoopPromise<RESPValue>> = CircularBuffer(initialCapacity: 16)
    private var bytesSinceLastReply = 0
    private let onPush: ((RESPValue) -> Void)?
    private var failed = false

    /// - Parameter onPush: receives replies no command waits for (subscriber mode).
    package init(onPush: ((RESPValue) -> Void)? = nil) {
        self.onPush = onPush
    }

    package var pendingCount: Int { self.pending.count }

    package func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = self.unwrapOutboundIn(data)
        if self.failed {
            request.promise.fail(RedisClientError.connectionClosed)
            promise?.fail(RedisClientError.connectionClosed)
            return
        }
        self.pending.append(request.promise)
        context.write(self.wrapOutboundOut(request.bytes), promise: promise)
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = self.unwrapInboundIn(data)
        guard !self.failed else { return }
        self.bytesSinceLastReply += buffer.readableBytes
        do {
            try buffer.withUnsafeReadableBytes { try self.reader.feed($0) }
            while let reply = try self.reader.next() {
                self.bytesSinceLastReply = 0
                if let promise = self.pending.popFirst() {
                    promise.succeed(reply)
                } else if let onPush = self.onPush {
                    onPush(reply)
                } else {
                    throw RESPReader.ProtocolError(message: "reply with no command waiting for it")
                }
            }
            if self.bytesSinceLastReply > Self.maximumReplyBytes {
                throw RESPReader.ProtocolError(message: "reply larger than \(Self.maximumReplyBytes) bytes")
            }
        } catch let error as RESPReader.ProtocolError {
            self.fail(context: context, error: .protocolError(error.message))
        } catch {
            self.fail(context: context, error: .protocolError("unreadable reply"))
        }
    }

    package func channelInactive(context: ChannelHandlerContext) {
        self.failed = true
        self.failAll(.connectionClosed)
        context.fireChannelInactive()
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A TLS failure keeps its reason (for the log); anything else is a lost connection.
        if let failure = error as? RedisClientError, case .tls = failure {
            self.fail(context: context, error: failure)
        } else {
            self.fail(context: context, error: .connectionClosed)
        }
    }

    private func fail(context: ChannelHandlerContext, error: RedisClientError) {
        self.failed = true
        self.failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: RedisClientError) {
        while let promise = self.pending.popFirst() {
            promise.fail(error)
        }
    }
}
