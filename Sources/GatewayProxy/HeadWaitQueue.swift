/// The order in which the connections of one event loop started waiting for a request head
/// (just accepted, between two requests, or part-way through a head): when `[server]
/// max_connections` is reached, the one that has waited longest is closed to admit the new
/// connection, so connections holding a slot without sending a request (slowloris) cannot
/// lock other clients out.
///
/// A list linked by slot index (the slots `WaitingConnections` hands out): entering,
/// leaving and taking the oldest are O(1) with no hashing and, once the arrays have grown to
/// the loop's connection count, no allocation. A value owned by `WaitingConnections`, on
/// its event loop.
struct HeadWaitQueue {
    private static let none: Int32 = -1

    private struct Links {
        var previous: Int32 = HeadWaitQueue.none
        var next: Int32 = HeadWaitQueue.none
        var waiting = false
    }

    private var links: [Links] = []
    private var head: Int32 = HeadWaitQueue.none
    private var tail: Int32 = HeadWaitQueue.none

    /// Connections waiting now.
    private(set) var count = 0

    /// `slot` starts waiting (again): it goes behind every connection already waiting.
    mutating func enter(_ slot: Int) {
        self.leave(slot)
        if slot >= self.links.count {
            self.links.append(contentsOf: repeatElement(Links(), count: slot + 1 - self.links.count))
        }
        self.links[slot] = Links(previous: self.tail, next: Self.none, waiting: true)
        if self.tail != Self.none {
            self.links[Int(self.tail)].next = Int32(slot)
        } else {
            self.head = Int32(slot)
        }
        self.tail = Int32(slot)
        self.count += 1
    }

    /// `slot` no longer waits (its head arrived, or it closed).
    mutating func leave(_ slot: Int) {
        guard slot >= 0, slot < self.links.count, self.links[slot].waiting else { return }
        let entry = self.links[slot]
        if entry.previous != Self.none {
            self.links[Int(entry.previous)].next = entry.next
        } else {
            self.head = entry.next
        }
        if entry.next != Self.none {
            self.links[Int(entry.next)].previous = entry.previous
        } else {
            self.tail = entry.previous
        }
        self.links[slot] = Links()
        self.count -= 1
    }

    /// Removes and returns the connection that has waited longest, if any waits.
    mutating func popOldest() -> Int? {
        guard self.head != Self.none else { return nil }
        let slot = Int(self.head)
        self.leave(slot)
        return slot
    }
}
