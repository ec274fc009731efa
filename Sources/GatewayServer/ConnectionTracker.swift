package import Logging
package import NIOConcurrencyHelpers
package import NIOCore
import Synchronization

/// Counts and remembers the open client connections of the whole process: it enforces
/// `[server] max_connections` at accept time and, on shutdown, asks every connection to
/// finish its current request and close (`ChannelShouldQuiesceEvent`).
///
/// Shared by every listener, so its state sits behind a lock and atomics; it is touched
/// only when a connection opens or closes, never per request.
final class ConnectionTracker: Sendable {
    private let open = Synchronization.Atomic<Int>(0)
    private let limit: Synchronization.Atomic<Int>
    private let channels = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])
    private let drainWaiters = NIOLockedValueBox<[CheckedContinuation<Void, Never>]>([])
    private let refusedCount = Synchronization.Atomic<Int>(0)

    init(limit: Int) {
        self.limit = Synchronization.Atomic(limit)
    }

    var openConnections: Int { self.open.load(ordering: .relaxed) }
    var refusedConnections: Int { self.refusedCount.load(ordering: .relaxed) }

    func updateLimit(_ limit: Int) {
        self.limit.store(limit, ordering: .relaxed)
    }

    /// A handler for a server (listening) channel; it sees each accepted child first.
    func makeAcceptHandler(logger: Logger) -> any ChannelHandler {
        AcceptHandler(tracker: self, logger: logger)
    }

    /// Whether a new connection may be admitted; if so it is counted until it closes.
    fileprivate func admit(_ channel: any Channel) -> Bool {
        let now = self.open.wrappingAdd(1, ordering: .relaxed).newValue
        if now > self.limit.load(ordering: .relaxed) {
            self.open.wrappingSubtract(1, ordering: .relaxed)
            self.refusedCount.wrappingAdd(1, ordering: .relaxed)
            return false
        }
        let id = ObjectIdentifier(channel)
        self.channels.withLockedValue { $0[id] = channel }
        channel.closeFuture.whenComplete { _ in
            self.channels.withLockedValue { _ = $0.removeValue(forKey: id) }
            let remaining = self.open.wrappingSubtract(1, ordering: .relaxed).newValue
            if remaining == 0 {
                let waiters = self.drainWaiters.withLockedValue { waiters in
                    defer { waiters.removeAll() }
                    return waiters
                }
                waiters.forEach { $0.resume() }
            }
        }
        return true
    }

    /// Asks every open connection to finish its in-flight request and close.
    func quiesceAll() {
        let channels = self.channels.withLockedValue { Array($0.values) }
        for channel in channels {
            channel.eventLoop.execute {
                channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            }
        }
    }

    /// Closes whatever is still open (drain timeout reached).
    func closeAll() {
        let channels = self.channels.withLockedValue { Array($0.values) }
        for channel in channels {
            channel.close(promise: nil)
        }
    }

    /// Returns when no connection is open.
    func waitUntilAllClosed() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = self.drainWaiters.withLockedValue { waiters -> Bool in
                if self.open.load(ordering: .relaxed) == 0 { return true }
                waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }
}

/// Sits on each listening channel before NIO's acceptor: admits or refuses each new
/// connection. Lives on the listener's event loop.
private final class AcceptHandler: ChannelInboundHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    private let tracker: ConnectionTracker
    private let logger: Logger
    private var lastRefusalLog: NIODeadline = .distantPast

    init(tracker: ConnectionTracker, logger: Logger) {
        self.tracker = tracker
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let child = self.unwrapInboundIn(data)
        if self.tracker.admit(child) {
            context.fireChannelRead(data)
            return
        }
        // Let NIO register the child, then close it: an unregistered channel has no loop
        // to close on. The close is queued behind the registration on the child's loop.
        context.fireChannelRead(data)
        child.close(promise: nil)
        let now = NIODeadline.now()
        if now - self.lastRefusalLog > .seconds(1) {
            self.lastRefusalLog = now
            self.logger.warning(
                "connection refused: max_connections reached",
                metadata: ["open": "\(self.tracker.openConnections)", "refused_total": "\(self.tracker.refusedConnections)"]
            )
        }
    }
}
