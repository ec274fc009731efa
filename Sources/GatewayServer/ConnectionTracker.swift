import GatewayCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// Counts and remembers the open client connections of the whole process: it enforces
/// `[server] max_connections` at accept time (closing a connection that waits for a request
/// head to make room, else refusing) and, on shutdown, asks every connection to
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
    private let evictedCount = Synchronization.Atomic<Int>(0)
    private let lastRefusalLogSecond = Synchronization.Atomic<Int64>(0)
    private let clock: GatewayClock

    init(limit: Int, clock: GatewayClock) {
        self.limit = Synchronization.Atomic(limit)
        self.clock = clock
    }

    var openConnections: Int { self.open.load(ordering: .relaxed) }
    var refusedConnections: Int { self.refusedCount.load(ordering: .relaxed) }
    /// Connections closed while waiting for a request head, to admit a new one at the limit.
    var evictedConnections: Int { self.evictedCount.load(ordering: .relaxed) }

    func updateLimit(_ limit: Int) {
        self.limit.store(limit, ordering: .relaxed)
    }

    /// Whether a new connection may be admitted; if so it is counted until it closes.
    ///
    /// At the limit, `closeWaiting` is asked to close a connection that waits for a request
    /// head (on the new connection's loop, oldest wait first): if it did, the new one is
    /// admitted, so idle or slowloris connections cannot lock clients out. The count then
    /// exceeds the limit until that close completes, a moment later on the same loop.
    func admit(_ channel: any Channel, closeWaiting: () -> Bool = { false }) -> Bool {
        let now = self.open.wrappingAdd(1, ordering: .relaxed).newValue
        if now > self.limit.load(ordering: .relaxed) {
            if closeWaiting() {
                self.evictedCount.wrappingAdd(1, ordering: .relaxed)
            } else {
                self.open.wrappingSubtract(1, ordering: .relaxed)
                self.refusedCount.wrappingAdd(1, ordering: .relaxed)
                return false
            }
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
                for waiter in waiters { waiter.resume() }
            }
        }
        return true
    }

    /// Whether a refusal should be logged now: at most one line per second, so a flood
    /// of connections cannot flood the log.
    func shouldLogRefusal() -> Bool {
        let second = self.clock.now().uptimeNanoseconds / 1_000_000_000
        let last = self.lastRefusalLogSecond.load(ordering: .relaxed)
        guard Int64(second) > last else { return false }
        return self.lastRefusalLogSecond.compareExchange(
            expected: last,
            desired: Int64(second),
            ordering: .relaxed
        ).exchanged
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
