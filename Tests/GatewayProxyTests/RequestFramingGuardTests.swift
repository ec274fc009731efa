import NIOCore
import NIOEmbedded
import Testing

@testable import GatewayProxy

/// Records, in order, the bytes and quiesce events that leave `RequestFramingGuard`.
private final class Recorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    enum Event: Equatable {
        case bytes(String)
        case quiesce
    }

    var events: [Event] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = self.unwrapInboundIn(data)
        let text = String(decoding: buffer.readableBytesView, as: UTF8.self)
        if case .bytes(let previous) = self.events.last {
            self.events[self.events.count - 1] = .bytes(previous + text)
        } else {
            self.events.append(.bytes(text))
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent { self.events.append(.quiesce) }
    }
}

@Suite struct RequestFramingGuardTests {
    private func run(_ chunks: [String], quiesceFirst: Bool = false) throws -> [Recorder.Event] {
        let recorder = Recorder()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(RequestFramingGuard(maxChunkLineBytes: 16, maxTrailerBytes: 40))
        try channel.pipeline.syncOperations.addHandler(recorder)
        if quiesceFirst { channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent()) }
        for chunk in chunks {
            try channel.writeInbound(channel.allocator.buffer(string: chunk))
        }
        _ = try? channel.finish()
        return recorder.events
    }

    /// Once the bytes can no longer be followed (here a real upgrade, which the parser stops
    /// parsing after), the connection must end with the current request: the quiesce event
    /// comes right after that request's bytes, before anything pipelined behind it.
    @Test func givingUpEndsTheConnectionAfterTheCurrentRequest() throws {
        let upgrade = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        let next =
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;" + String(repeating: "e", count: 40)
        #expect(try self.run([upgrade + next]) == [.bytes(upgrade), .quiesce, .bytes(next)])
        #expect(try self.run([upgrade, next]) == [.bytes(upgrade), .quiesce, .bytes(next)])
    }

    @Test func aMalformedHeadAlsoEndsTheConnection() throws {
        let head = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n"
        #expect(try self.run([head + "hello"]) == [.bytes(head), .quiesce, .bytes("hello")])
    }

    /// The server's own quiesce (shutdown) and the guard's must not both reach NIO's
    /// pipelining handler, which expects one.
    @Test func quiesceIsSentOnlyOnce() throws {
        let head = "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"
        #expect(try self.run([head], quiesceFirst: true) == [.quiesce, .bytes(head)])
    }

    @Test func ordinaryRequestsNeverQuiesce() throws {
        let text =
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: x\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
        #expect(try self.run([text]) == [.bytes(text)])
    }
}
