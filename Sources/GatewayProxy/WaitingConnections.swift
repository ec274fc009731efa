/// The client connections of one event loop that wait for a request head, with the handler
/// that can close each: what `[server] max_connections` sacrifices, oldest wait first, when
/// it is reached (see `HeadWaitQueue`).
///
/// Each connection holds a slot (an index, reused after it closed) from its first handler's
/// arrival to its removal; waiting or not is a relink in the queue, so the two changes per
/// request cost no hashing and no allocation.
///
/// One per event loop, owned by its `LoopContext`; touched only on that loop (by the
/// `ClientFrontHandler`s of its connections, and by the accept of a new connection there),
/// so it needs no lock.
package final class WaitingConnections {
    private var queue = HeadWaitQueue()
    /// Indexed by slot; nil for a free slot.
    private var handlers: [ClientFrontHandler?] = []
    private var freeSlots: [Int] = []

    package init() {}

    /// Connections waiting for a request head now.
    package var count: Int { self.queue.count }

    /// A slot for one connection's handler, for the calls below.
    func register(_ handler: ClientFrontHandler) -> Int {
        if let slot = self.freeSlots.popLast() {
            self.handlers[slot] = handler
            return slot
        }
        self.handlers.append(handler)
        return self.handlers.count - 1
    }

    func startedWaiting(_ slot: Int) {
        guard slot >= 0, slot < self.handlers.count, self.handlers[slot] != nil else { return }
        self.queue.enter(slot)
    }

    func stoppedWaiting(_ slot: Int) {
        self.queue.leave(slot)
    }

    /// The connection closed: forgotten for good, its slot free for another.
    func unregister(_ slot: Int) {
        guard slot >= 0, slot < self.handlers.count, self.handlers[slot] != nil else { return }
        self.queue.leave(slot)
        self.handlers[slot] = nil
        self.freeSlots.append(slot)
    }

    /// Closes the connection that has waited longest for a request head. Returns false
    /// when none waits (every connection of this loop is inside an exchange).
    package func closeOldest() -> Bool {
        while let slot = self.queue.popOldest() {
            guard let handler = self.handlers[slot] else { continue }
            if handler.closeWhileWaiting() { return true }
        }
        return false
    }
}
