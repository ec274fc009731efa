import NIOCore

/// One bounded region of a `CredentialCache`: values by key, the oldest stored evicted
/// first beyond `capacity`. Each kind of answer (valid, unknown) has a space of its own, so
/// filling one never evicts from the other. A value owned by its cache, so touched only on
/// that cache's event loop.
struct CacheSpace<Key: Hashable, Value> {
    private struct Slot {
        var value: Value
        /// Position in `order`; an older position of the same key there is obsolete.
        var sequence: UInt64
    }

    private var slots: [Key: Slot] = [:]
    /// Keys oldest first, with the sequence they were stored under.
    private var order: CircularBuffer<(key: Key, sequence: UInt64)> = CircularBuffer(initialCapacity: 64)
    private var nextSequence: UInt64 = 0
    private(set) var capacity: Int

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    var count: Int { self.slots.count }

    subscript(key: Key) -> Value? {
        self.slots[key]?.value
    }

    /// Stores `value` as the newest entry (a key stored again counts as new).
    mutating func insert(_ key: Key, _ value: Value) {
        self.nextSequence &+= 1
        self.slots[key] = Slot(value: value, sequence: self.nextSequence)
        self.order.append((key, self.nextSequence))
        self.evictBeyondCapacity()
    }

    /// Replaces the value of an entry in place, keeping its age (nil drops the entry).
    mutating func update(_ transform: (Value) -> Value?) {
        for (key, slot) in self.slots {
            if let value = transform(slot.value) {
                self.slots[key]?.value = value
            } else {
                self.slots[key] = nil
            }
        }
    }

    mutating func remove(_ key: Key) {
        self.slots[key] = nil
    }

    mutating func removeAll() {
        self.slots.removeAll()
        self.order.removeAll()
    }

    /// A smaller capacity evicts the oldest at once.
    mutating func setCapacity(_ capacity: Int) {
        self.capacity = max(1, capacity)
        self.evictBeyondCapacity()
    }

    private mutating func evictBeyondCapacity() {
        // Positions whose key was stored again or removed since are obsolete: skipped here.
        while self.slots.count > self.capacity, let oldest = self.order.popFirst() {
            if self.slots[oldest.key]?.sequence == oldest.sequence {
                self.slots[oldest.key] = nil
            }
        }
        if self.order.count > 2 * self.capacity + 64 {
            let slots = self.slots
            self.order = CircularBuffer(self.order.filter { slots[$0.key]?.sequence == $0.sequence })
        }
    }
}
