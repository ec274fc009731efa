/// The deadlines of one event loop's client connections (idle and header timeouts), as slots
/// in one array: registering a connection takes a slot (reused after it closed), arming and
/// cancelling its deadline relinks it, and a sweep takes the passed ones, earliest first.
///
/// Deadlines of one duration are armed in time order (`now` never goes back), so each
/// duration keeps a FIFO list and its head is its earliest deadline: arming, cancelling and
/// finding the next deadline are O(1) (the lists are as few as the durations in use: the
/// idle and the header timeout, a few more for a while after a reload changed them), with no
/// allocation once the array has grown to the loop's connection count. Entries are linked by
/// index, not by reference, so moving a deadline costs no reference counting.
///
/// Times are nanoseconds of the monotonic clock (`NIODeadline.uptimeNanoseconds`). A value
/// owned by the loop's `ConnectionDeadlines`, on that loop.
struct DeadlineSweep {
    private static var none: Int32 { -1 }
    /// `Entry.list` of a slot that is not registered.
    private static var released: Int32 { -2 }

    private struct Entry {
        var deadline: Int64 = 0
        /// The list the deadline is linked into; `none` while unarmed, `released` when free.
        var list: Int32 = DeadlineSweep.none
        var previous: Int32 = DeadlineSweep.none
        var next: Int32 = DeadlineSweep.none
    }

    /// The armed deadlines of one duration, oldest first.
    private struct List {
        var duration: Int64
        var head: Int32 = DeadlineSweep.none
        var tail: Int32 = DeadlineSweep.none
    }

    private var entries: [Entry] = []
    private var freeSlots: [Int32] = []
    private var lists: [List] = []
    /// Deadlines armed now.
    private(set) var armedCount = 0

    /// Slots in use (registered, armed or not).
    var registeredCount: Int { self.entries.count - self.freeSlots.count }

    /// A slot for a new connection, unarmed.
    mutating func register() -> Int {
        if let slot = self.freeSlots.popLast() {
            self.entries[Int(slot)].list = Self.none
            return Int(slot)
        }
        self.entries.append(Entry())
        return self.entries.count - 1
    }

    /// The connection closed: its deadline is cancelled and its slot reused later.
    mutating func unregister(_ slot: Int) {
        guard self.isRegistered(slot) else { return }
        self.cancel(slot)
        self.entries[slot].list = Self.released
        self.freeSlots.append(Int32(slot))
    }

    /// The deadline of `slot` becomes `now + duration` (replacing any armed one). Returns
    /// it, nil for a slot that is not registered.
    @discardableResult
    mutating func arm(_ slot: Int, duration: Int64, now: Int64) -> Int64? {
        guard self.isRegistered(slot) else { return nil }
        self.unlink(slot)
        let list = self.list(for: duration)
        var deadline = now + duration
        let tail = self.lists[list].tail
        if tail != Self.none {
            // Only a clock that went back could put it before the tail; it fires with the tail.
            deadline = max(deadline, self.entries[Int(tail)].deadline)
            self.entries[Int(tail)].next = Int32(slot)
        } else {
            self.lists[list].head = Int32(slot)
        }
        self.entries[slot] = Entry(deadline: deadline, list: Int32(list), previous: tail, next: Self.none)
        self.lists[list].tail = Int32(slot)
        self.armedCount += 1
        return deadline
    }

    /// No deadline for `slot` until armed again.
    mutating func cancel(_ slot: Int) {
        guard self.isRegistered(slot) else { return }
        self.unlink(slot)
    }

    /// Takes a registered slot out of its list, if it is in one.
    private mutating func unlink(_ slot: Int) {
        let entry = self.entries[slot]
        guard entry.list >= 0 else { return }
        let list = Int(entry.list)
        if entry.previous != Self.none {
            self.entries[Int(entry.previous)].next = entry.next
        } else {
            self.lists[list].head = entry.next
        }
        if entry.next != Self.none {
            self.entries[Int(entry.next)].previous = entry.previous
        } else {
            self.lists[list].tail = entry.previous
        }
        self.entries[slot].list = Self.none
        self.entries[slot].previous = Self.none
        self.entries[slot].next = Self.none
        self.armedCount -= 1
    }

    /// The armed deadline of `slot`, if any.
    func deadline(of slot: Int) -> Int64? {
        guard self.isRegistered(slot), self.entries[slot].list >= 0 else { return nil }
        return self.entries[slot].deadline
    }

    /// The earliest armed deadline.
    var earliest: Int64? {
        self.earliestList.map { self.entries[Int(self.lists[$0].head)].deadline }
    }

    /// Disarms and returns the slot whose deadline is the earliest, if it is at or before
    /// `now`; nil when none has passed. Equal deadlines come out in the order they were armed
    /// within a duration.
    mutating func popExpired(now: Int64) -> Int? {
        guard let list = self.earliestList else { return nil }
        let slot = Int(self.lists[list].head)
        guard self.entries[slot].deadline <= now else { return nil }
        self.unlink(slot)
        return slot
    }

    private var earliestList: Int? {
        var best: Int?
        var bestDeadline = Int64.max
        for index in self.lists.indices {
            let head = self.lists[index].head
            guard head != Self.none else { continue }
            let deadline = self.entries[Int(head)].deadline
            if best == nil || deadline < bestDeadline {
                best = index
                bestDeadline = deadline
            }
        }
        return best
    }

    private func isRegistered(_ slot: Int) -> Bool {
        slot >= 0 && slot < self.entries.count && self.entries[slot].list != Self.released
    }

    /// The list of `duration`: an existing one, an empty one taken over, or a new one.
    private mutating func list(for duration: Int64) -> Int {
        var empty: Int?
        for index in self.lists.indices {
            if self.lists[index].duration == duration { return index }
            if empty == nil, self.lists[index].head == Self.none { empty = index }
        }
        if let empty {
            self.lists[empty].duration = duration
            return empty
        }
        self.lists.append(List(duration: duration))
        return self.lists.count - 1
    }
}
