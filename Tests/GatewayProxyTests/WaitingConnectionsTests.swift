import GatewayTestSupport
import NIOCore
import NIOEmbedded
import Testing

@testable import GatewayProxy

/// `HeadWaitQueue` and `WaitingConnections`: which connection `max_connections` closes to
/// admit a new one.
@Suite("WaitingConnections")
struct WaitingConnectionsTests {
    @Test("the queue gives the longest wait first; leaving or re-entering changes the order")
    func queueOrder() {
        var queue = HeadWaitQueue()
        for token in 1...4 { queue.enter(token) }
        queue.leave(2)
        // 1 served a request and waits for its next one: it is now the newest.
        queue.enter(1)
        #expect(queue.count == 3)
        #expect(queue.popOldest() == 3)
        #expect(queue.popOldest() == 4)
        #expect(queue.popOldest() == 1)
        #expect(queue.popOldest() == nil)
        #expect(queue.count == 0)
    }

    @Test("the queue keeps its order across many short waits")
    func queueCompaction() {
        var queue = HeadWaitQueue()
        queue.enter(1000)
        queue.enter(1001)
        // Many short waits, each ended, leave no trace in the order.
        for token in 0..<500 {
            queue.enter(token)
            queue.leave(token)
        }
        queue.enter(1002)
        #expect(queue.count == 3)
        #expect(queue.popOldest() == 1000)
        #expect(queue.popOldest() == 1001)
        #expect(queue.popOldest() == 1002)
        #expect(queue.popOldest() == nil)
    }

    @Test("closes the connection waiting longest for a head, never one inside an exchange")
    func closesOldestWaiting() throws {
        let waiting = WaitingConnections()
        let channels = try (0..<3).map { _ in try Self.connection(waiting) }
        #expect(waiting.count == 3)
        // The first connection's head arrived: it is inside an exchange.
        channels[0].pipeline.triggerUserOutboundEvent(ConnectionPhaseEvent.requestHeadReceived, promise: nil)
        // The second is part-way through a head (slowloris), the third never sent a byte.
        try channels[1].writeInbound(ByteBuffer(string: "GET /slow"))
        #expect(waiting.count == 2)

        #expect(waiting.closeOldest())
        #expect(channels.map(\.isActive) == [true, false, true])
        #expect(waiting.closeOldest())
        #expect(channels.map(\.isActive) == [true, false, false])
        #expect(!waiting.closeOldest())
        #expect(channels[0].isActive)

        // The response went out: the first waits for its next request and may be closed.
        channels[0].pipeline.triggerUserOutboundEvent(ConnectionPhaseEvent.awaitingRequest, promise: nil)
        #expect(waiting.closeOldest())
        #expect(!channels[0].isActive)
        #expect(waiting.count == 0)
    }

    @Test("a connection closed by its peer or a timeout is forgotten")
    func closedConnectionsLeave() throws {
        let waiting = WaitingConnections()
        let clock = ManualClock()
        let first = try Self.connection(waiting)
        let second = try Self.connection(waiting, clock: clock)
        _ = try first.finish()
        #expect(waiting.count == 1)
        // An idle timeout closes the second (the deadline sweep reads the clock, on the loop).
        clock.advance(seconds: 61)
        second.embeddedEventLoop.advanceTime(by: .seconds(61))
        #expect(!second.isActive)
        #expect(waiting.count == 0)
        #expect(!waiting.closeOldest())
    }

    @Test("a slot freed by a closed connection serves a new one, which waits behind the others")
    func slotsAreReused() throws {
        let waiting = WaitingConnections()
        let first = try Self.connection(waiting)
        let second = try Self.connection(waiting)
        _ = try first.finish()
        let third = try Self.connection(waiting)
        #expect(waiting.count == 2)
        #expect(waiting.closeOldest())
        #expect(!second.isActive)
        #expect(third.isActive)
        #expect(waiting.closeOldest())
        #expect(!third.isActive)
        #expect(!waiting.closeOldest())
    }

    /// An active connection whose only handler is a `ClientFrontHandler` listed in `waiting`,
    /// on a loop of its own whose deadlines read `clock`.
    private static func connection(
        _ waiting: WaitingConnections,
        clock: ManualClock = ManualClock()
    ) throws
        -> EmbeddedChannel
    {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(
            handler: ClientFrontHandler(
                heads: ClientFrontHandler.HeadSettings(
                    idleTimeout: .seconds(60),
                    headerTimeout: .seconds(10),
                    deadlines: ConnectionDeadlines(eventLoop: loop, clock: clock.clock),
                    waiting: waiting
                )
            ),
            loop: loop
        )
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).wait()
        return channel
    }
}
