/// The order in which the connections of one event loop started waiting for a request head
/// (just accepted, between two requests, or part-way through a head): when `[server]
/// max_connections` is reached, the one that has waited longest is closed to admit the new
/// connection, so connections holding a slot without sending a request (slowloris) cannot
/// lock other clients out.
///
/// Entering and leaving are O(1): a connection that leaves keeps a stale entry in `order`
/// until it reaches the front or the order is compacted (amortised O(1) per entry). A
/// value owned by `WaitingConnections`, on its event loop.
struct HeadWaitQueue {
    /// Connection token → sequence number of its current wait.
    private var waiting: [UInt64: UInt64] = [:]
    private var order: [(sequence: UInt64, token: UInt64)] = []
    private var front = 0
    private var nextSequence: UInt64 = 0

    /// Connections waiting now.
    var count: Int { self.waiting.count }

    /// `token` starts waiting (again): it goes behind every connection already waiting.
    mutating func enter(_ token: UInt64) {
        self.nextSequence += 1
        self.waiting[token] = self.nextSequence
        self.order.append((self.nextSequence, token))
        if self.order.count > 2 * self.waiting.count + 64 {
            self.order = self.order[self.front...].filter { self.waiting[$0.token] == $0.sequence }
            self.front = 0
        }
    }

    /// `token` no longer waits (its head arrived, or it closed).
    mutating func leave(_ token: UInt64) {
        self.waiting.removeValue(forKey: token)
    }

    /// Removes and returns the connection that has waited longest, if any waits.
    mutating func popOldest() -> UInt64? {
        while self.front < self.order.count {
            let entry = self.order[self.front]
            self.front += 1
            if self.waiting[entry.token] == entry.sequence {
                self.waiting.removeValue(forKey: entry.token)
                return entry.token
            }
        }
        return nil
    }
}
