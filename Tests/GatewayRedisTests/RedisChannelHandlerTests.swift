import GatewayRedis
import GatewayRedisTestSupport
import GatewayTestSupport
import NIOCore
import NIOEmbedded
import Testing

// RedisChannelHandler on an EmbeddedChannel: everything happens synchronously on the test's
// thread, so a future's state can be read right after the bytes that should complete it.

private func reply(_ future: EventLoopFuture<RESPValue>) -> RESPValue? {
    guard case .success(let value) = completion(of: future) else { return nil }
    return value
}

private func isProtocolError(_ error: (any Error)?) -> Bool {
    if case .protocolError = error as? RedisClientError { return true }
    return false
}

private func makeChannel(onPush: ((RESPValue) -> Void)? = nil) throws -> (EmbeddedChannel, RedisChannelHandler) {
    let handler = RedisChannelHandler(onPush: onPush)
    let channel = EmbeddedChannel(handler: handler)
    try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 6379)).wait()
    return (channel, handler)
}

/// Writes one command through the handler; returns its reply future and the write's outcome.
@discardableResult
private func send(
    _ channel: EmbeddedChannel,
    _ arguments: [String]
) -> (reply: EventLoopFuture<RESPValue>, writeError: (any Error)?) {
    let promise = channel.embeddedEventLoop.makePromise(of: RESPValue.self)
    let request = RedisRequest(bytes: ByteBuffer(bytes: RESPCommand.encode(arguments)), promise: promise)
    do {
        try channel.writeOutbound(request)
        return (promise.futureResult, nil)
    } catch {
        return (promise.futureResult, error)
    }
}

private func feed(_ channel: EmbeddedChannel, _ text: String) throws {
    try channel.writeInbound(ByteBuffer(string: text))
}

private func feed(_ channel: EmbeddedChannel, _ bytes: some Collection<UInt8>) throws {
    try channel.writeInbound(ByteBuffer(bytes: bytes))
}

@Suite struct RedisChannelHandlerTests {
    @Test func writesEachCommandsRESPBytes() throws {
        let (channel, handler) = try makeChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        let first = send(channel, ["SET", "k", "v"])
        let second = send(channel, ["GET", "k"])
        #expect(first.writeError == nil)
        #expect(second.writeError == nil)
        #expect(
            try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(bytes: RESPCommand.encode(["SET", "k", "v"]))
        )
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(bytes: RESPCommand.encode(["GET", "k"])))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        #expect(handler.pendingCount == 2)
        try feed(channel, "+OK\r\n$1\r\nv\r\n")
        #expect(reply(first.reply) == .simpleString("OK"))
        #expect(reply(second.reply) == .bulk("v"))
    }

    @Test func pipelinedCommandsAreAnsweredInFIFOOrder() throws {
        let (channel, handler) = try makeChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        let a = send(channel, ["GET", "a"]).reply
        let b = send(channel, ["GET", "b"]).reply
        let c = send(channel, ["INCR", "c"]).reply
        #expect(handler.pendingCount == 3)
        #expect(completion(of: a) == nil && completion(of: b) == nil && completion(of: c) == nil)

        try feed(channel, "$1\r\nA\r\n$2\r\nBB\r\n:3\r\n")

        #expect(reply(a) == .bulk("A"))
        #expect(reply(b) == .bulk("BB"))
        #expect(reply(c) == .integer(3))
        #expect(handler.pendingCount == 0)
        #expect(channel.isActive)
    }

    /// Three replies (status, bulk, nested array with a null) split in two at every byte
    /// position: each promise completes exactly when its reply is whole, with the right value.
    @Test func partialRepliesCompleteOnlyWhenWhole() throws {
        let replies = ["+OK\r\n", "$5\r\nhe\r\no\r\n", "*2\r\n:1\r\n*2\r\n$-1\r\n-ERR x\r\n"]
        let expected: [RESPValue] = [
            .simpleString("OK"), .bulkString(Array("he\r\no".utf8)),
            .array([.integer(1), .array([.null, .error("ERR x")])]),
        ]
        let stream = Array(replies.joined().utf8)
        // Offset just past each reply.
        var ends: [Int] = []
        var total = 0
        for text in replies {
            total += text.utf8.count
            ends.append(total)
        }

        for split in 0...stream.count {
            let (channel, handler) = try makeChannel()
            defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
            let futures = (0..<3).map { send(channel, ["CMD", String($0)]).reply }

            try feed(channel, stream[..<split])
            for (index, future) in futures.enumerated() {
                if ends[index] <= split {
                    #expect(reply(future) == expected[index], "reply \(index) after \(split) bytes")
                } else {
                    #expect(completion(of: future) == nil, "reply \(index) must still be pending after \(split) bytes")
                }
            }
            try feed(channel, stream[split...])
            for (index, future) in futures.enumerated() {
                #expect(reply(future) == expected[index], "reply \(index), split at \(split)")
            }
            #expect(handler.pendingCount == 0)
            #expect(channel.isActive)
        }
    }

    @Test func byteByByteFeedCompletesEachReplyOnItsLastByte() throws {
        let (channel, _) = try makeChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        let first = send(channel, ["GET", "k"]).reply
        let second = send(channel, ["PING"]).reply
        let bytes = Array("$3\r\nabc\r\n+PONG\r\n".utf8)
        for (index, byte) in bytes.enumerated() {
            try feed(channel, [byte])
            #expect((completion(of: first) != nil) == (index >= 8), "first reply after \(index + 1) bytes")
            #expect(
                (completion(of: second) != nil) == (index == bytes.count - 1),
                "second reply after \(index + 1) bytes"
            )
        }
        #expect(reply(first) == .bulk("abc"))
        #expect(reply(second) == .simpleString("PONG"))
    }

    /// An error reply is a reply: the handler succeeds the promise with `.error`, and the
    /// client maps it to `RedisClientError.server`. The connection stays usable.
    @Test func errorReplySucceedsThePromiseWithTheError() throws {
        let (channel, handler) = try makeChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        let failing = send(channel, ["BOGUS"]).reply
        let next = send(channel, ["PING"]).reply
        try feed(channel, "-ERR x\r\n+PONG\r\n")
        #expect(reply(failing) == .error("ERR x"))
        #expect(reply(next) == .simpleString("PONG"))
        #expect(handler.pendingCount == 0)
        #expect(channel.isActive)
    }

    @Test func protocolErrorFailsEveryPendingCommandAndClosesTheChannel() throws {
        let (channel, handler) = try makeChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        let futures = (0..<3).map { send(channel, ["GET", "k\($0)"]).reply }
        try feed(channel, "?bad\r\n")
        for future in futures {
            #expect(isProtocolError(failureIfAny(of: future)), "got \(String(describing: completion(of: future)))")
        }
        #expect(handler.pendingCount == 0)
        #expect(!channel.isActive)
        channel.embeddedEventLoop.run()
        #expect(completion(of: channel.closeFuture) != nil)
    }

    @Test func repliesCompleteBeforeGarbageAreStillDelivered() throws {
        let (channel, _) = try makeChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        let first = send(channel, ["PING"]).reply
        let second = send(channel, ["PING"]).reply
        try feed(channel, "+PONG\r\n")
        try feed(channel, "?garbage\r\n")
        #expect(reply(first) == .simpleString("PONG"))
        #expect(isProtocolError(failureIfAny(of: second)))
        #expect(!channel.isActive)
    }

    @Test func garbageInsideABulkLengthIsAProtocolError() throws {
        let (channel, _) = try makeChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        let future = send(channel, ["GET", "k"]).reply
        try feed(channel, "$1x\r\n")
        #expect(isProtocolError(failureIfAny(of: future)))
        #expect(!channel.isActive)
    }

    @Test func replyWithoutAPendingCommandIsAProtocolError() throws {
        let (channel, handler) = try makeChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        try feed(channel, "+OK\r\n")
        #expect(!channel.isActive)
        #expect(handler.pendingCount == 0)
        // The connection is dead: a later command fails at once instead of waiting forever.
        let late = send(channel, ["PING"])
        #expect((failureIfAny(of: late.reply) as? RedisClientError) == .connectionClosed)
        #expect((late.writeError as? RedisClientError) == .connectionClosed)
    }

    @Test func extraReplyAfterTheAnsweredOnesIsAProtocolError() throws {
        let (channel, _) = try makeChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        let only = send(channel, ["PING"]).reply
        try feed(channel, "+PONG\r\n:1\r\n")
        #expect(reply(only) == .simpleString("PONG"))
        #expect(!channel.isActive)
    }

    @Test func subscriberModeSendsUnsolicitedRepliesToOnPush() throws {
        final class Pushes { var values: [RESPValue] = [] }
        let pushes = Pushes()
        let (channel, handler) = try makeChannel(onPush: { pushes.values.append($0) })
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }

        let subscribe = send(channel, ["SUBSCRIBE", "dbgw:events"]).reply
        let confirmation = "*3\r\n$9\r\nsubscribe\r\n$11\r\ndbgw:events\r\n:1\r\n"
        let message = "*3\r\n$7\r\nmessage\r\n$11\r\ndbgw:events\r\n$5\r\nhello\r\n"
        // The command's reply and a message in one read: the first goes to the command.
        try feed(channel, confirmation + message)
        #expect(reply(subscribe) == .array([.bulk("subscribe"), .bulk("dbgw:events"), .integer(1)]))
        let expectedMessage = RESPValue.array([.bulk("message"), .bulk("dbgw:events"), .bulk("hello")])
        #expect(pushes.values == [expectedMessage])

        // Later pushes with nothing pending, split across reads.
        try feed(channel, String(message.prefix(10)))
        #expect(pushes.values.count == 1)
        try feed(channel, String(message.dropFirst(10)) + message)
        #expect(pushes.values == [expectedMessage, expectedMessage, expectedMessage])
        #expect(handler.pendingCount == 0)
        #expect(channel.isActive)
    }

    /// A header announcing 100 MB is refused from the header alone: no payload is fed, and
    /// the pending command fails at once rather than waiting for (and buffering) 100 MB.
    @Test func hugeAnnouncedBulkFailsWithoutBuffering() throws {
        let (channel, handler) = try makeChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        let first = send(channel, ["GET", "big"]).reply
        let second = send(channel, ["GET", "other"]).reply
        try feed(channel, "$100000000\r\n")
        let error = (failureIfAny(of: first) as? RedisClientError)
        #expect(isProtocolError(error))
        if case .protocolError(let message) = error {
            #expect(message.contains("100000000"), "message: \(message)")
        }
        #expect(isProtocolError(failureIfAny(of: second)))
        #expect(handler.pendingCount == 0)
        #expect(!channel.isActive)
    }

    @Test func hugeAnnouncedArrayFailsFromItsHeader() throws {
        let (channel, _) = try makeChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        let future = send(channel, ["KEYS", "*"]).reply
        try feed(channel, "*\(RESPReader.maximumArrayElements + 1)\r\n")
        #expect(isProtocolError(failureIfAny(of: future)))
        #expect(!channel.isActive)
    }

    /// Each bulk is under the per-bulk limit, but together they exceed what the handler
    /// buffers for one reply: it gives up as soon as the limit is crossed.
    @Test func replyLargerThanTheHandlerLimitIsAProtocolError() throws {
        let (channel, _) = try makeChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        let future = send(channel, ["MGET", "a", "b"]).reply
        let bulk = 40 << 20
        try feed(channel, "*2\r\n$\(bulk)\r\n")
        let chunk = [UInt8](repeating: 0x61, count: 1 << 20)
        var fed = 0
        while completion(of: future) == nil && fed < 2 * bulk {
            try feed(channel, chunk)
            fed += chunk.count
            if fed == bulk { try feed(channel, "\r\n$\(bulk)\r\n") }
        }
        let error = (failureIfAny(of: future) as? RedisClientError)
        #expect(isProtocolError(error))
        #expect(fed > RedisChannelHandler.maximumReplyBytes - chunk.count)
        #expect(fed <= RedisChannelHandler.maximumReplyBytes + chunk.count)
        #expect(!channel.isActive)
    }

    @Test func channelInactiveFailsPendingCommandsWithConnectionClosed() throws {
        let (channel, handler) = try makeChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        let answered = send(channel, ["PING"]).reply
        let first = send(channel, ["GET", "a"]).reply
        let second = send(channel, ["GET", "b"]).reply
        try feed(channel, "+PONG\r\n$1\r\n")  // the second reply is partial
        try channel.close().wait()
        #expect(reply(answered) == .simpleString("PONG"))
        #expect((failureIfAny(of: first) as? RedisClientError) == .connectionClosed)
        #expect((failureIfAny(of: second) as? RedisClientError) == .connectionClosed)
        #expect(handler.pendingCount == 0)
    }

    @Test func writeAfterTheConnectionClosedFailsImmediately() throws {
        let (channel, handler) = try makeChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        try channel.close().wait()
        let late = send(channel, ["PING"])
        #expect((failureIfAny(of: late.reply) as? RedisClientError) == .connectionClosed)
        #expect((late.writeError as? RedisClientError) == .connectionClosed)
        #expect(handler.pendingCount == 0)
    }

    @Test func writeAfterAProtocolErrorFailsImmediately() throws {
        let (channel, handler) = try makeChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        let first = send(channel, ["PING"]).reply
        try feed(channel, "!oops\r\n")
        #expect(isProtocolError(failureIfAny(of: first)))
        let late = send(channel, ["PING"])
        #expect((failureIfAny(of: late.reply) as? RedisClientError) == .connectionClosed)
        #expect(handler.pendingCount == 0)
        // Bytes arriving after the failure are ignored, not delivered.
        try feed(channel, "+PONG\r\n")
        #expect(handler.pendingCount == 0)
    }

    @Test func errorCaughtFailsPendingAndCloses() throws {
        struct Boom: Error {}
        let (channel, handler) = try makeChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        let future = send(channel, ["PING"]).reply
        channel.pipeline.fireErrorCaught(Boom())
        #expect((failureIfAny(of: future) as? RedisClientError) == .connectionClosed)
        #expect(handler.pendingCount == 0)
        #expect(!channel.isActive)
    }
}
