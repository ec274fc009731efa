import GatewayTestSupport
import NIOCore
import NIOEmbedded
import Testing

@testable import GatewayProxy

/// Stands for the HTTP handlers behind the front: records the bytes that reach them and holds
/// reads while told to (as the proxy does for an exchange).
private final class Behind: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer

    var received = ""
    var quiesced = 0
    var holding = false
    private var readPending = false
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.received += String(buffer: self.unwrapInboundIn(data))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent { self.quiesced += 1 }
    }

    func read(context: ChannelHandlerContext) {
        if self.holding {
            self.readPending = true
        } else {
            context.read()
        }
    }

    func release() {
        self.holding = false
        if self.readPending, let context {
            self.readPending = false
            context.read()
        }
    }
}

/// `ClientFrontHandler` with its roles together (a plain connection) or split around TLS:
/// the head and idle deadlines through the loop's sweep, the NUL check, and read-ahead
/// bytes delivered later starting the head deadline only then.
@Suite("ClientFrontHandler")
struct ClientFrontHandlerTests {
    private let loop = EmbeddedEventLoop()
    private let clock = ManualClock()
    private let deadlines: ConnectionDeadlines
    private let behind = Behind()

    init() {
        self.deadlines = ConnectionDeadlines(eventLoop: self.loop, clock: self.clock.clock)
    }

    private var settings: ClientFrontHandler.HeadSettings {
        ClientFrontHandler.HeadSettings(
            idleTimeout: .seconds(60),
            headerTimeout: .seconds(10),
            deadlines: self.deadlines
        )
    }

    /// An active connection: the front (one handler, or two around a stand-in for TLS), then `behind`.
    private func connection(splitAroundTLS: Bool = false) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(loop: self.loop)
        let sync = channel.pipeline.syncOperations
        if splitAroundTLS {
            try sync.addHandler(ClientFrontHandler(roles: .readAhead, heads: nil))
            try sync.addHandler(ClientFrontHandler(roles: .requestHeads, heads: self.settings))
        } else {
            try sync.addHandler(ClientFrontHandler(heads: self.settings))
        }
        try sync.addHandler(self.behind)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).wait()
        return channel
    }

    private func advance(by amount: TimeAmount) {
        self.clock.advance(by: amount)
        self.loop.advanceTime(by: amount)
    }

    private static func written(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    @Test("an idle connection is closed silently at its idle deadline", arguments: [false, true])
    func idleTimeout(splitAroundTLS: Bool) throws {
        let channel = try self.connection(splitAroundTLS: splitAroundTLS)
        #expect(self.deadlines.registeredCount == 1)
        #expect(self.deadlines.armedCount == 1)
        self.advance(by: .seconds(59))
        #expect(channel.isActive)
        self.advance(by: .seconds(1))
        #expect(!channel.isActive)
        #expect(try Self.written(channel).isEmpty)
        // The closed connection left the sweep.
        #expect(self.deadlines.registeredCount == 0)
    }

    @Test("a head not complete within the header timeout from its first byte gets a raw 408", arguments: [false, true])
    func headTimeout(splitAroundTLS: Bool) throws {
        let channel = try self.connection(splitAroundTLS: splitAroundTLS)
        self.advance(by: .seconds(30))
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\n"))
        self.advance(by: .seconds(9))
        // More bytes do not extend the deadline.
        try channel.writeInbound(ByteBuffer(string: "Host: x\r\n"))
        #expect(channel.isActive)
        self.advance(by: .seconds(1))
        let response = try Self.written(channel)
        #expect(response.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"))
        #expect(response.contains("\"error\":\"request_timeout\""))
        #expect(!channel.isActive)
        #expect(self.behind.received == "GET / HTTP/1.1\r\nHost: x\r\n")
    }

    @Test("a complete head stops the deadlines until the next request waits", arguments: [false, true])
    func phaseEvents(splitAroundTLS: Bool) throws {
        let channel = try self.connection(splitAroundTLS: splitAroundTLS)
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        channel.pipeline.triggerUserOutboundEvent(ConnectionPhaseEvent.requestHeadReceived, promise: nil)
        #expect(self.deadlines.armedCount == 0)
        self.advance(by: .seconds(120))
        #expect(channel.isActive)
        channel.pipeline.triggerUserOutboundEvent(ConnectionPhaseEvent.awaitingRequest, promise: nil)
        #expect(self.deadlines.armedCount == 1)
        self.advance(by: .seconds(60))
        #expect(!channel.isActive)
    }

    @Test("bytes held by the read-ahead during an exchange start the head deadline when delivered")
    func heldBytesStartTheHeadDeadlineWhenDelivered() throws {
        let channel = try self.connection()
        // The handlers behind hold their reads once the first head arrived.
        self.behind.holding = true
        try channel.writeInbound(ByteBuffer(string: "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"))
        channel.pipeline.triggerUserOutboundEvent(ConnectionPhaseEvent.requestHeadReceived, promise: nil)
        // A pipelined request while the first is in its exchange: held in front.
        try channel.writeInbound(ByteBuffer(string: "GET /2 HTTP/1.1\r\n"))
        #expect(self.behind.received == "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
        self.advance(by: .seconds(30))
        #expect(channel.isActive)
        // The response ended: the next request is awaited and reads resume.
        channel.pipeline.triggerUserOutboundEvent(ConnectionPhaseEvent.awaitingRequest, promise: nil)
        self.behind.release()
        self.loop.run()
        #expect(self.behind.received.hasSuffix("GET /2 HTTP/1.1\r\n"))
        self.advance(by: .seconds(9))
        #expect(channel.isActive)
        self.advance(by: .seconds(1))
        #expect(try Self.written(channel).hasPrefix("HTTP/1.1 408 "))
    }

    @Test(
        "a NUL in an Authorization line is answered 401; one elsewhere goes on to the parser",
        arguments: [false, true]
    )
    func nulInAuthorization(splitAroundTLS: Bool) throws {
        let channel = try self.connection(splitAroundTLS: splitAroundTLS)
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nX-A: b\u{0}c\r\n"))
        #expect(self.behind.received.hasSuffix("b\u{0}c\r\n"))
        try channel.writeInbound(ByteBuffer(string: "authorization: Bearer ab\u{0}cd\r\n\r\n"))
        let response = try Self.written(channel)
        #expect(response.hasPrefix("HTTP/1.1 401 "))
        #expect(response.contains("NUL byte"))
        #expect(!self.behind.received.contains("Bearer"))
        #expect(!channel.isActive)
        #expect(self.deadlines.armedCount == 0)
    }

    @Test("split around TLS, only the plaintext side takes the phase events and a deadline slot")
    func splitRoles() throws {
        let channel = try self.connection(splitAroundTLS: true)
        #expect(self.deadlines.registeredCount == 1)
        let promise = self.loop.makePromise(of: Void.self)
        channel.pipeline.triggerUserOutboundEvent(ConnectionPhaseEvent.requestHeadReceived, promise: promise)
        #expect(throws: Never.self) { try promise.futureResult.wait() }
        _ = try channel.finish()
        #expect(self.deadlines.registeredCount == 0)
    }

    @Test("a drain's quiesce before the first request waits for its head", arguments: [false, true])
    func quiesceHeldUntilTheFirstHead(splitAroundTLS: Bool) throws {
        let channel = try self.connection(splitAroundTLS: splitAroundTLS)
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        self.loop.run()
        #expect(self.behind.quiesced == 0)
        channel.pipeline.triggerUserOutboundEvent(ConnectionPhaseEvent.requestHeadReceived, promise: nil)
        #expect(self.behind.quiesced == 0)
        // On the next loop tick: the head has reached the HTTP handlers first.
        self.loop.run()
        #expect(self.behind.quiesced == 1)
    }

    @Test("a drain's quiesce after a request passes at once, and only once")
    func quiescePassesAfterARequest() throws {
        let channel = try self.connection()
        channel.pipeline.triggerUserOutboundEvent(ConnectionPhaseEvent.requestHeadReceived, promise: nil)
        self.loop.run()
        #expect(self.behind.quiesced == 0)
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(self.behind.quiesced == 1)
        channel.pipeline.triggerUserOutboundEvent(ConnectionPhaseEvent.awaitingRequest, promise: nil)
        channel.pipeline.triggerUserOutboundEvent(ConnectionPhaseEvent.requestHeadReceived, promise: nil)
        self.loop.run()
        #expect(self.behind.quiesced == 1)
    }
}
