package import GatewayConfig
package import GatewayCore
package import NIOCore

/// The credentials one event loop has recently resolved, in front of the store.
///
/// Positive entries are trusted for `positive_ttl`; past that they are "stale": the store
/// is asked again, but if it cannot be reached the stale entry keeps working until
/// `stale_grace` has also passed. Negative entries (unknown, revoked or expired keys) spare
/// the store from repeated guesses for `negative_ttl`. The two kinds live in spaces of their
/// own, each bounded (`max_entries`, `negative_max_entries`) and evicting its oldest first:
/// however many unknown keys are presented, they only ever evict each other, never a valid
/// key. Touched only on its event loop, so it has no lock.
package final class CredentialCache {
    package enum Lookup: Equatable {
        case fresh(Principal)
        case freshNegative
        case stale(Principal)
        case miss
    }

    private struct Positive {
        var principal: Principal
        var freshUntil: NIODeadline
        var staleUntil: NIODeadline
    }

    private var positive: CacheSpace<String, Positive>
    /// Unknown keys: until when they are known to be unknown.
    private var negative: CacheSpace<String, NIODeadline>
    private var positiveTTL: TimeAmount
    private var negativeTTL: TimeAmount
    private var staleGrace: TimeAmount
    package private(set) var hits = 0
    package private(set) var misses = 0

    /// - Parameters:
    ///   - maxEntries: valid credentials kept.
    ///   - negativeMaxEntries: unknown credentials kept, apart from the valid ones.
    package init(
        positiveTTL: TimeAmount,
        negativeTTL: TimeAmount,
        staleGrace: TimeAmount,
        maxEntries: Int,
        negativeMaxEntries: Int = CacheSettings().negativeMaxEntries
    ) {
        self.positiveTTL = positiveTTL
        self.negativeTTL = negativeTTL
        self.staleGrace = staleGrace
        self.positive = CacheSpace(capacity: maxEntries)
        self.negative = CacheSpace(capacity: negativeMaxEntries)
    }

    /// Entries of both kinds.
    package var count: Int { self.positive.count + self.negative.count }
    package var positiveCount: Int { self.positive.count }
    package var negativeCount: Int { self.negative.count }

    package func lookup(_ key: String, now: NIODeadline) -> Lookup {
        if let entry = self.positive[key] {
            if now < entry.freshUntil {
                self.hits += 1
                return .fresh(entry.principal)
            }
            self.misses += 1
            return now < entry.staleUntil ? .stale(entry.principal) : .miss
        }
        if let freshUntil = self.negative[key] {
            if now < freshUntil {
                self.hits += 1
                return .freshNegative
            }
            self.negative.remove(key)
        }
        self.misses += 1
        return .miss
    }

    /// Whether `key` has a positive entry that may still be used (fresh, or stale within
    /// `stale_grace`); not counted as a lookup.
    package func holdsValid(_ key: String, now: NIODeadline) -> Bool {
        guard let entry = self.positive[key] else { return false }
        return now < entry.staleUntil
    }

    package func storePositive(_ key: String, _ principal: Principal, now: NIODeadline) {
        self.negative.remove(key)
        self.positive.insert(
            key,
            Positive(
                principal: principal,
                freshUntil: now + self.positiveTTL,
                staleUntil: now + self.positiveTTL + self.staleGrace
            )
        )
    }

    package func storeNegative(_ key: String, now: NIODeadline) {
        // A key the store no longer vouches for (revoked, expired) loses its positive entry.
        self.positive.remove(key)
        self.negative.insert(key, now + self.negativeTTL)
    }

    package func remove(_ key: String) {
        self.positive.remove(key)
        self.negative.remove(key)
    }

    package func removeAll() {
        self.positive.removeAll()
        self.negative.removeAll()
    }

    /// Revocations may have been missed (a switch of Redis primaries): every positive entry
    /// must be checked with the store again before it is trusted, yet still works within
    /// `stale_grace` while the store cannot answer; negative entries go.
    package func expireAll(now: NIODeadline) {
        self.positive.update { entry in
            var entry = entry
            entry.freshUntil = min(entry.freshUntil, now)
            return entry
        }
        self.negative.removeAll()
    }

    /// A cache with the limits of `[cache]`.
    package convenience init(_ settings: CacheSettings) {
        self.init(
            positiveTTL: settings.positiveTTL.timeAmount,
            negativeTTL: settings.negativeTTL.timeAmount,
            staleGrace: settings.staleGrace.timeAmount,
            maxEntries: settings.maxEntries,
            negativeMaxEntries: settings.negativeMaxEntries
        )
    }

    /// New `[cache]` limits from a reload; see `reconfigure(positiveTTL:...)`.
    package func reconfigure(_ settings: CacheSettings) {
        self.reconfigure(
            positiveTTL: settings.positiveTTL.timeAmount,
            negativeTTL: settings.negativeTTL.timeAmount,
            staleGrace: settings.staleGrace.timeAmount,
            maxEntries: settings.maxEntries,
            negativeMaxEntries: settings.negativeMaxEntries
        )
    }

    /// New limits from a reload. Entries are kept with the deadlines they were stored
    /// under (a credential's answer does not depend on these settings); new entries get the
    /// new ones, and a smaller bound evicts the oldest of its space at once.
    package func reconfigure(
        positiveTTL: TimeAmount,
        negativeTTL: TimeAmount,
        staleGrace: TimeAmount,
        maxEntries: Int,
        negativeMaxEntries: Int = CacheSettings().negativeMaxEntries
    ) {
        self.positiveTTL = positiveTTL
        self.negativeTTL = negativeTTL
        self.staleGrace = staleGrace
        self.positive.setCapacity(maxEntries)
        self.negative.setCapacity(negativeMaxEntries)
    }
}
