package import GatewayConfig
package import GatewayCore
package import NIOCore

/// The credentials one event loop has recently resolved, in front of the store.
///
/// Positive entries are trusted for `positive_ttl`; past that they are "stale": the store
/// is asked again, but if it cannot be reached the stale entry keeps working until
/// `stale_grace` has also passed. Negative entries (unknown, revoked or
/// expired keys) spare the store from repeated guesses for `negative_ttl`. Bounded: the
/// oldest entries go first. Touched only on its event loop, so it has no lock.
package final class CredentialCache {
    package enum Lookup: Equatable {
        case fresh(Principal)
        case freshNegative
        case stale(Principal)
        case miss
    }

    private struct Entry {
        var principal: Principal?
        var freshUntil: NIODeadline
        var staleUntil: NIODeadline
        /// Position in `order`; an older position of the same key there is obsolete.
        var sequence: UInt64 = 0
    }

    private var entries: [String: Entry] = [:]
    /// Keys oldest first, with the sequence they were stored under.
    private var order: CircularBuffer<(key: String, sequence: UInt64)> = CircularBuffer(initialCapacity: 64)
    private var nextSequence: UInt64 = 0
    private var positiveTTL: TimeAmount
    private var negativeTTL: TimeAmount
    private var staleGrace: TimeAmount
    private var maxEntries: Int
    package private(set) var hits = 0
    package private(set) var misses = 0

    package init(positiveTTL: TimeAmount, negativeTTL: TimeAmount, staleGrace: TimeAmount, maxEntries: Int) {
        self.positiveTTL = positiveTTL
        self.negativeTTL = negativeTTL
        self.staleGrace = staleGrace
        self.maxEntries = max(1, maxEntries)
    }

    package var count: Int { self.entries.count }

    package func lookup(_ key: String, now: NIODeadline) -> Lookup {
        guard let entry = self.entries[key] else {
            self.misses += 1
            return .miss
        }
        if now < entry.freshUntil {
            self.hits += 1
            return entry.principal.map { .fresh($0) } ?? .freshNegative
        }
        self.misses += 1
        if let principal = entry.principal, now < entry.staleUntil {
            return .stale(principal)
        }
        return .miss
    }

    package func storePositive(_ key: String, _ principal: Principal, now: NIODeadline) {
        self.insert(
            key,
            Entry(
                principal: principal,
                freshUntil: now + self.positiveTTL,
                staleUntil: now + self.positiveTTL + self.staleGrace
            )
        )
    }

    package func storeNegative(_ key: String, now: NIODeadline) {
        self.insert(key, Entry(principal: nil, freshUntil: now + self.negativeTTL, staleUntil: now + self.negativeTTL))
    }

    package func remove(_ key: String) {
        self.entries[key] = nil
    }

    package func removeAll() {
        self.entries.removeAll()
        self.order.removeAll()
    }

    /// Revocations may have been missed (a switch of Redis primaries): every positive entry
    /// must be checked with the store again before it is trusted, yet still works within
    /// `stale_grace` while the store cannot answer; negative entries go.
    package func expireAll(now: NIODeadline) {
        self.entries = self.entries.compactMapValues { entry in
            guard entry.principal != nil else { return nil }
            var entry = entry
            entry.freshUntil = min(entry.freshUntil, now)
            return entry
        }
    }

    /// A cache with the limits of `[cache]`.
    package convenience init(_ settings: CacheSettings) {
        self.init(
            positiveTTL: settings.positiveTTL.timeAmount,
            negativeTTL: settings.negativeTTL.timeAmount,
            staleGrace: settings.staleGrace.timeAmount,
            maxEntries: settings.maxEntries
        )
    }

    /// New `[cache]` limits from a reload; see `reconfigure(positiveTTL:...)`.
    package func reconfigure(_ settings: CacheSettings) {
        self.reconfigure(
            positiveTTL: settings.positiveTTL.timeAmount,
            negativeTTL: settings.negativeTTL.timeAmount,
            staleGrace: settings.staleGrace.timeAmount,
            maxEntries: settings.maxEntries
        )
    }

    /// New limits from a reload. Entries are kept with the deadlines they were stored
    /// under (a credential's answer does not depend on these settings); new entries get the
    /// new ones, and a smaller bound evicts the oldest at once.
    package func reconfigure(positiveTTL: TimeAmount, negativeTTL: TimeAmount, staleGrace: TimeAmount, maxEntries: Int)
    {
        self.positiveTTL = positiveTTL
        self.negativeTTL = negativeTTL
        self.staleGrace = staleGrace
        self.maxEntries = max(1, maxEntries)
        self.evictBeyondBound()
    }

    private func insert(_ key: String, _ entry: Entry) {
        var entry = entry
        self.nextSequence &+= 1
        entry.sequence = self.nextSequence
        self.entries[key] = entry
        self.order.append((key, entry.sequence))
        self.evictBeyondBound()
    }

    private func evictBeyondBound() {
        // Positions whose key was stored again or removed since are obsolete: skipped here.
        while self.entries.count > self.maxEntries, let oldest = self.order.popFirst() {
            if self.entries[oldest.key]?.sequence == oldest.sequence {
                self.entries[oldest.key] = nil
            }
        }
        if self.order.count > 2 * self.maxEntries + 64 {
            self.order = CircularBuffer(self.order.filter { self.entries[$0.key]?.sequence == $0.sequence })
        }
    }
}
