import NIOCore
import NIOEmbedded
import Testing

@testable import GatewayProxy

/// Stands for the socket in front of the read-ahead of `ClientFrontHandler`: counts the `read()` calls that
/// reach it (each would keep or put the socket in the epoll interest set).
private final class SocketReads: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer

    var count = 0

    func read(context: ChannelHandlerContext) {
        self.count += 1
        context.read()
    }
}

/// Stands for the handlers behind: records what reaches them, and swallows `read()` while
/// `holding` (as the proxy does while it authorizes), asking again when released.
private final class HoldingHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer

    enum Event: Equatable {
        case bytes(String)
        case readComplete
        case inactive
        case inputClosed
    }

    var events: [Event] = []
    var holding = false
    private var readPending = false
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.events.append(.bytes(String(buffer: self.unwrapInboundIn(data))))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.events.append(.readComplete)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.events.append(.inactive)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            self.events.append(.inputClosed)
        }
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

@Suite struct ClientFrontReadAheadTests {
    private let channel = EmbeddedChannel()
    private let socket = SocketReads()
    private let behind = HoldingHandler()

    init() throws {
        try self.channel.pipeline.syncOperations.addHandler(self.socket)
        try self.channel.pipeline.syncOperations.addHandler(ClientFrontHandler(roles: .readAhead, heads: nil))
        try self.channel.pipeline.syncOperations.addHandler(self.behind)
    }

    /// One read cycle from the socket: the bytes, then the read-complete.
    private func socketRead(_ text: String) throws {
        try self.channel.writeInbound(ByteBuffer(string: text))
    }

    @Test func bytesGoOnAtOnceWhileTheHandlersBehindRead() throws {
        try self.socketRead("GET / HTTP/1.1\r\n\r\n")
        try self.socketRead("GET /2 HTTP/1.1\r\n\r\n")
        #expect(
            self.behind.events == [
                .bytes("GET / HTTP/1.1\r\n\r\n"), .readComplete, .bytes("GET /2 HTTP/1.1\r\n\r\n"), .readComplete,
            ]
        )
    }

    @Test func theSocketIsStillReadWhileTheHandlersBehindHoldTheirReads() throws {
        self.behind.holding = true
        try self.socketRead("GET / HTTP/1.1\r\n\r\n")
        // The read the handlers behind swallowed is not the socket's: it stays readable
        // (NIO would otherwise take it out of the epoll interest set).
        #expect(self.socket.count == 1)
        #expect(self.behind.events == [.bytes("GET / HTTP/1.1\r\n\r\n"), .readComplete])
    }

    @Test func bytesThatCameWhileHeldWaitAndStopFurtherReadsUntilAskedFor() throws {
        self.behind.holding = true
        try self.socketRead("GET /1 HTTP/1.1\r\n\r\n")
        let readsBefore = self.socket.count
        try self.socketRead("GET /2 HTTP/1.1\r\n")
        // More of the same kind (NIO reads everything up to an end of file unasked).
        try self.socketRead("\r\n")
        #expect(self.behind.events == [.bytes("GET /1 HTTP/1.1\r\n\r\n"), .readComplete])
        // Bounded: nothing more is read from the socket while bytes are held.
        #expect(self.socket.count == readsBefore)

        self.behind.release()
        // Handed on from the loop, not from inside the `read()` of the handler that asked.
        #expect(self.behind.events.count == 2)
        self.channel.embeddedEventLoop.run()
        #expect(
            self.behind.events == [
                .bytes("GET /1 HTTP/1.1\r\n\r\n"), .readComplete, .bytes("GET /2 HTTP/1.1\r\n\r\n"), .readComplete,
            ]
        )
        // Delivered, and the handlers behind read again: so does the socket.
        #expect(self.socket.count == readsBefore + 1)
        try self.socketRead("x")
        #expect(self.behind.events.suffix(2) == [.bytes("x"), .readComplete])
    }

    @Test func heldBytesDieWithTheConnection() throws {
        self.behind.holding = true
        try self.socketRead("a")
        try self.socketRead("b")
        _ = try self.channel.finish(acceptAlreadyClosed: false)
        // "b" was never asked for: like bytes left in the kernel, it is never acted on.
        #expect(self.behind.events == [.bytes("a"), .readComplete, .inactive])
    }

    @Test func heldBytesGoOnBeforeTheEndOfTheClientsInput() throws {
        self.behind.holding = true
        try self.socketRead("a")
        try self.socketRead("b")
        self.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(self.behind.events == [.bytes("a"), .readComplete, .bytes("b"), .readComplete, .inputClosed])
        // Nothing goes on twice once the loop runs the delivery a release schedules.
        self.behind.release()
        self.channel.embeddedEventLoop.run()
        #expect(self.behind.events.count == 5)
    }

    @Test func stateHoldsAtMostWhatCameAfterTheLastDemandedCycle() {
        var state = ReadAheadState()
        let first = state.bytesArrived()
        #expect(first)
        let firstEnd = state.readCycleEnded()
        #expect(firstEnd == .passOnAndContinue)
        #expect(state.readsAheadOfDemand)
        let second = state.bytesArrived()
        #expect(!second)
        state.hold(ByteBuffer(string: "2"))
        state.hold(ByteBuffer(string: "3"))
        let secondEnd = state.readCycleEnded()
        #expect(secondEnd == .hold)
        #expect(!state.readsAheadOfDemand)
        let asked = state.readRequested()
        #expect(asked == .scheduleDelivery)
        let askedAgain = state.readRequested()
        #expect(askedAgain == .none)
        let delivered = state.takeForDelivery()
        #expect(delivered.map { String(buffer: $0) } == "23")
        let deliveredAgain = state.takeForDelivery()
        #expect(deliveredAgain == nil)
        let askedOnceDelivered = state.readRequested()
        #expect(askedOnceDelivered == .readSocket)
    }
}
