import GatewayCore
import NIOCore
import NIOEmbedded
import Testing

@testable import GatewayServer

/// `ConnectionTracker` on EmbeddedChannels: the `max_connections` count, and what the drain
/// asks of the open connections.
@Suite("ConnectionTracker")
struct ConnectionTrackerTests {
    @Test("admits up to the limit, refuses and counts beyond it, and a close frees a slot")
    func limit() throws {
        let tracker = ConnectionTracker(limit: 2, clock: .system)
        let channels = (0..<3).map { _ in EmbeddedChannel() }

        #expect(tracker.admit(channels[0]))
        #expect(tracker.admit(channels[1]))
        #expect(!tracker.admit(channels[2]))
        #expect(tracker.openConnections == 2)
        #expect(tracker.refusedConnections == 1)

        _ = try channels[0].finish()
        #expect(tracker.openConnections == 1)
        #expect(tracker.admit(channels[2]))
        #expect(tracker.refusedConnections == 1)
        for channel in channels.dropFirst() { _ = try channel.finish() }
        #expect(tracker.openConnections == 0)
    }

    @Test("at the limit, a connection waiting for a request head is closed to admit the new one")
    func closesWaitingAtTheLimit() throws {
        let tracker = ConnectionTracker(limit: 1, clock: .system)
        let held = EmbeddedChannel()
        let newcomer = EmbeddedChannel()
        let refused = EmbeddedChannel()
        try held.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).wait()
        var asked = 0
        #expect(
            tracker.admit(held) {
                Issue.record("asked below the limit")
                return false
            }
        )

        #expect(
            tracker.admit(newcomer) {
                asked += 1
                held.close(promise: nil)
                return true
            }
        )
        held.embeddedEventLoop.run()
        #expect(asked == 1)
        #expect(!held.isActive)
        #expect(tracker.openConnections == 1)
        #expect(tracker.evictedConnections == 1)
        #expect(tracker.refusedConnections == 0)

        // Nobody waits for a head: refused as before.
        #expect(!tracker.admit(refused) { false })
        #expect(tracker.openConnections == 1)
        #expect(tracker.refusedConnections == 1)
        _ = try newcomer.finish()
        #expect(tracker.openConnections == 0)
        // Closed, so each channel and its pipeline stop holding each other (LeakSanitizer).
        _ = try held.finish(acceptAlreadyClosed: true)
        _ = try refused.finish(acceptAlreadyClosed: true)
    }

    @Test("a new limit applies to the next connection")
    func updateLimit() throws {
        let tracker = ConnectionTracker(limit: 1, clock: .system)
        let first = EmbeddedChannel()
        let second = EmbeddedChannel()
        #expect(tracker.admit(first))
        #expect(!tracker.admit(second))

        tracker.updateLimit(2)

        #expect(tracker.admit(second))
        #expect(tracker.refusedConnections == 1)
        _ = try first.finish()
        _ = try second.finish()
    }

    @Test("quiesceAll asks every open connection to finish; closeAll closes them")
    func quiesceAndClose() throws {
        let tracker = ConnectionTracker(limit: 10, clock: .system)
        let recorders = [QuiesceRecorder(), QuiesceRecorder()]
        let channels = recorders.map { EmbeddedChannel(handler: $0) }
        for channel in channels {
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).wait()
            #expect(tracker.admit(channel))
        }

        tracker.quiesceAll()
        for channel in channels { channel.embeddedEventLoop.run() }

        #expect(recorders.map(\.quiesced) == [1, 1])
        #expect(channels.map(\.isActive) == [true, true])

        tracker.closeAll()
        for channel in channels { channel.embeddedEventLoop.run() }

        #expect(channels.map(\.isActive) == [false, false])
        #expect(tracker.openConnections == 0)
    }

    @Test("waitUntilAllClosed returns once the last connection closed")
    func waitUntilAllClosed() async throws {
        let tracker = ConnectionTracker(limit: 10, clock: .system)
        // Nothing open: returns at once.
        await tracker.waitUntilAllClosed()
        let channels = [NIOAsyncTestingChannel(), NIOAsyncTestingChannel()]
        for channel in channels { #expect(tracker.admit(channel)) }
        let waiter = Task { await tracker.waitUntilAllClosed() }

        try await channels[0].close()
        #expect(tracker.openConnections == 1)
        try await channels[1].close()

        try await within("the waiter to return") { await waiter.value }
        #expect(tracker.openConnections == 0)
    }
}

/// Counts `ChannelShouldQuiesceEvent`s. One per EmbeddedChannel, on the test's thread.
final class QuiesceRecorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private(set) var quiesced = 0

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent { self.quiesced += 1 }
        context.fireUserInboundEventTriggered(event)
    }
}
