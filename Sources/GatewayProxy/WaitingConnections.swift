/// The client connections of one event loop that wait for a request head, with the handler
/// that can close each: what `[server] max_connections` sacrifices, oldest wait first, when
/// it is reached (see `HeadWaitQueue`).
///
/// One per event loop, owned by its `LoopContext`; touched only on that loop (by the
/// `ClientFrontHandler`s of its connections, and by the accept of a new connection
/// there), so it needs no lock.
package final class WaitingConnections {
    private var queue = HeadWaitQueue()
    private var handlers: [UInt64: ClientFrontHandler] = [:]
    private var nextToken: UInt64 = 0

    package init() {}

    /// Connections waiting for a request head now.
    package var count: Int { self.queue.count }

    /// A token for one connection's handler, for the calls below.
    func register(_ handler: ClientFrontHandler) -> UInt64 {
        self.nextToken += 1
        self.handlers[self.nextToken] = handler
        return self.nextToken
    }

    func startedWaiting(_ token: UInt64) {
        guard self.handlers[token] != nil else { return }
        self.queue.enter(token)
    }

    func stoppedWaiting(_ token: UInt64) {
        self.queue.leave(token)
    }

    /// The connection closed: forgotten for good.
    func unregister(_ token: UInt64) {
        self.queue.leave(token)
        self.handlers.removeValue(forKey: token)
    }

    /// Closes the connection that has waited longest for a request head. Returns false
    /// when none waits (every connection of this loop is inside an exchange).
    package func closeOldest() -> Bool {
        while let token = self.queue.popOldest() {
            guard let handler = self.handlers.removeValue(forKey: token) else { continue }
            if handler.closeWhileWaiting() { return true }
        }
        return false
    }
}
