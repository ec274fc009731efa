import GatewayConfig
import GatewayCore
import NIOCore
import Testing

@testable import GatewayAuth

private let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

private func principal(_ name: String) -> Principal {
    Principal(subject: name, kind: .apiKey, scopes: ["read:databases"], keyID: "key_\(name)")
}

private func makeCache(
    positive: TimeAmount = .seconds(30),
    negative: TimeAmount = .seconds(5),
    grace: TimeAmount = .seconds(300),
    maxEntries: Int = 100
) -> CredentialCache {
    CredentialCache(positiveTTL: positive, negativeTTL: negative, staleGrace: grace, maxEntries: maxEntries)
}

@Suite struct CredentialCacheTests {
    @Test func emptyCacheMisses() {
        let cache = makeCache()
        #expect(cache.lookup("h", now: t0) == .miss)
        #expect(cache.count == 0)
    }

    @Test func positiveEntryIsFreshForItsTTL() {
        let cache = makeCache(positive: .seconds(30))
        cache.storePositive("h", principal("alice"), now: t0)
        #expect(cache.count == 1)
        #expect(cache.lookup("h", now: t0) == .fresh(principal("alice")))
        #expect(cache.lookup("h", now: t0 + .seconds(29)) == .fresh(principal("alice")))
        #expect(cache.lookup("h", now: t0 + .seconds(30) - .nanoseconds(1)) == .fresh(principal("alice")))
        // The TTL is exclusive: at exactly positive_ttl the entry is stale.
        #expect(cache.lookup("h", now: t0 + .seconds(30)) == .stale(principal("alice")))
        #expect(cache.lookup("other", now: t0) == .miss)
    }

    @Test func negativeEntryIsFreshForItsTTL() {
        let cache = makeCache(negative: .seconds(5))
        cache.storeNegative("h", now: t0)
        #expect(cache.lookup("h", now: t0) == .freshNegative)
        #expect(cache.lookup("h", now: t0 + .seconds(5) - .nanoseconds(1)) == .freshNegative)
        #expect(cache.lookup("h", now: t0 + .seconds(5)) == .miss)
    }

    @Test func negativeEntriesHaveNoGrace() {
        let cache = makeCache(negative: .seconds(5), grace: .seconds(300))
        cache.storeNegative("h", now: t0)
        for offset in [5, 6, 60, 299, 304] {
            #expect(cache.lookup("h", now: t0 + .seconds(Int64(offset))) == .miss, "\(offset) s")
        }
    }

    @Test func staleWithinGraceThenMiss() {
        let cache = makeCache(positive: .seconds(10), grace: .seconds(60))
        cache.storePositive("h", principal("alice"), now: t0)
        #expect(cache.lookup("h", now: t0 + .seconds(10)) == .stale(principal("alice")))
        #expect(cache.lookup("h", now: t0 + .seconds(40)) == .stale(principal("alice")))
        #expect(cache.lookup("h", now: t0 + .seconds(70) - .nanoseconds(1)) == .stale(principal("alice")))
        #expect(cache.lookup("h", now: t0 + .seconds(70)) == .miss)
        #expect(cache.lookup("h", now: t0 + .seconds(10_000)) == .miss)
    }

    @Test func zeroGraceMeansNoStalePhase() {
        let cache = makeCache(positive: .seconds(10), grace: .seconds(0))
        cache.storePositive("h", principal("alice"), now: t0)
        #expect(cache.lookup("h", now: t0 + .seconds(9)) == .fresh(principal("alice")))
        #expect(cache.lookup("h", now: t0 + .seconds(10)) == .miss)
    }

    @Test func storingAgainReplacesTheEntry() {
        let cache = makeCache(positive: .seconds(10), negative: .seconds(5))
        cache.storePositive("h", principal("alice"), now: t0)
        cache.storeNegative("h", now: t0 + .seconds(1))
        #expect(cache.count == 1)
        #expect(cache.lookup("h", now: t0 + .seconds(2)) == .freshNegative)
        // The negative entry expires without grace, even though a positive one was there.
        #expect(cache.lookup("h", now: t0 + .seconds(6)) == .miss)

        cache.storePositive("h", principal("bob"), now: t0 + .seconds(20))
        #expect(cache.count == 1)
        #expect(cache.lookup("h", now: t0 + .seconds(21)) == .fresh(principal("bob")))
        // Refreshing extends the TTL from the new store time.
        cache.storePositive("h", principal("bob"), now: t0 + .seconds(29))
        #expect(cache.lookup("h", now: t0 + .seconds(35)) == .fresh(principal("bob")))
    }

    @Test func removeAndRemoveAll() {
        let cache = makeCache()
        cache.storePositive("a", principal("a"), now: t0)
        cache.storePositive("b", principal("b"), now: t0)
        cache.storeNegative("c", now: t0)
        #expect(cache.count == 3)

        cache.remove("a")
        #expect(cache.count == 2)
        #expect(cache.lookup("a", now: t0) == .miss)
        #expect(cache.lookup("b", now: t0) == .fresh(principal("b")))
        cache.remove("never-stored")
        #expect(cache.count == 2)

        cache.removeAll()
        #expect(cache.count == 0)
        #expect(cache.lookup("b", now: t0) == .miss)
        #expect(cache.lookup("c", now: t0) == .miss)

        // Usable again afterwards.
        cache.storePositive("a", principal("a"), now: t0)
        #expect(cache.lookup("a", now: t0) == .fresh(principal("a")))
    }

    @Test func expireAllMakesPositiveEntriesStaleAndDropsNegativeOnes() {
        let cache = makeCache(positive: .seconds(30), grace: .seconds(300))
        cache.storePositive("a", principal("a"), now: t0)
        cache.storeNegative("n", now: t0)
        let switched = t0 + .seconds(10)
        cache.expireAll(now: switched)
        // Checked with the store again before it is trusted, usable meanwhile within the grace.
        #expect(cache.lookup("a", now: switched) == .stale(principal("a")))
        #expect(cache.lookup("a", now: t0 + .seconds(329)) == .stale(principal("a")))
        #expect(cache.lookup("a", now: t0 + .seconds(330)) == .miss)
        #expect(cache.lookup("n", now: switched) == .miss)
        // A lookup answered by the store afterwards is fresh again.
        cache.storePositive("a", principal("a"), now: switched)
        #expect(cache.lookup("a", now: switched) == .fresh(principal("a")))
    }

    @Test func maxEntriesEvictsTheOldestValidKeyFirst() {
        let cache = makeCache(maxEntries: 3)
        cache.storePositive("a", principal("a"), now: t0)
        cache.storeNegative("b", now: t0 + .seconds(1))
        cache.storePositive("c", principal("c"), now: t0 + .seconds(2))
        cache.storePositive("d", principal("d"), now: t0 + .seconds(3))
        // Negative entries are not counted against max_entries.
        #expect(cache.positiveCount == 3 && cache.negativeCount == 1)

        cache.storePositive("e", principal("e"), now: t0 + .seconds(4))
        #expect(cache.positiveCount == 3)
        #expect(cache.lookup("a", now: t0 + .seconds(4)) == .miss)
        #expect(cache.lookup("b", now: t0 + .seconds(4)) == .freshNegative)
        #expect(cache.lookup("c", now: t0 + .seconds(4)) == .fresh(principal("c")))
        #expect(cache.lookup("e", now: t0 + .seconds(4)) == .fresh(principal("e")))
    }

    @Test func noNumberOfUnknownKeysEvictsAValidOne() {
        let cache = CredentialCache(
            positiveTTL: .seconds(30),
            negativeTTL: .seconds(5),
            staleGrace: .seconds(300),
            maxEntries: 3,
            negativeMaxEntries: 50
        )
        for name in ["a", "b", "c"] {
            cache.storePositive(name, principal(name), now: t0)
        }
        // A spray of 100,000 unknown keys, each remembered as unknown.
        for index in 0..<100_000 {
            cache.storeNegative("spray-\(index)", now: t0 + .milliseconds(Int64(index / 100)))
        }
        let later = t0 + .seconds(1)
        for name in ["a", "b", "c"] {
            #expect(cache.lookup(name, now: later) == .fresh(principal(name)), "\(name) was evicted")
        }
        // The negative space holds its own bound, newest kept.
        #expect(cache.negativeCount == 50)
        #expect(cache.lookup("spray-99999", now: later) == .freshNegative)
        #expect(cache.lookup("spray-99949", now: later) == .miss)
        #expect(cache.count == 53)
    }

    @Test func negativeMaxEntriesEvictsTheOldestUnknownKeyFirstAndReloadsShrinkIt() {
        let cache = CredentialCache(
            positiveTTL: .seconds(30),
            negativeTTL: .seconds(60),
            staleGrace: .seconds(300),
            maxEntries: 10,
            negativeMaxEntries: 2
        )
        cache.storeNegative("x", now: t0)
        cache.storeNegative("y", now: t0)
        cache.storeNegative("x", now: t0 + .seconds(1))  // stored again: now the newest
        cache.storeNegative("z", now: t0 + .seconds(2))
        #expect(cache.lookup("y", now: t0 + .seconds(2)) == .miss)
        #expect(cache.lookup("x", now: t0 + .seconds(2)) == .freshNegative)
        #expect(cache.lookup("z", now: t0 + .seconds(2)) == .freshNegative)
        var settings = CacheSettings()
        settings.negativeTTL = .seconds(60)
        settings.negativeMaxEntries = 1
        cache.reconfigure(settings)
        #expect(cache.negativeCount == 1)
        #expect(cache.lookup("z", now: t0 + .seconds(3)) == .freshNegative)
    }

    @Test func aKeyMovesBetweenTheSpaces() {
        let cache = makeCache()
        cache.storeNegative("k", now: t0)
        cache.storePositive("k", principal("k"), now: t0)
        #expect(cache.positiveCount == 1 && cache.negativeCount == 0)
        #expect(cache.lookup("k", now: t0) == .fresh(principal("k")))
        // Revoked: the store no longer vouches for it.
        cache.storeNegative("k", now: t0 + .seconds(1))
        #expect(cache.positiveCount == 0 && cache.negativeCount == 1)
        #expect(cache.lookup("k", now: t0 + .seconds(1)) == .freshNegative)
    }

    @Test func reconfigureKeepsEntriesAndTheirDeadlinesAndAppliesNewLimitsToNewEntries() {
        let cache = makeCache(positive: .seconds(30), grace: .seconds(300), maxEntries: 10)
        cache.storePositive("a", principal("a"), now: t0)
        cache.storePositive("b", principal("b"), now: t0 + .seconds(1))
        cache.storePositive("c", principal("c"), now: t0 + .seconds(2))

        cache.reconfigure(positiveTTL: .seconds(5), negativeTTL: .seconds(1), staleGrace: .seconds(10), maxEntries: 2)

        // The smaller bound evicts the oldest at once; the others keep their deadlines.
        #expect(cache.count == 2)
        #expect(cache.lookup("a", now: t0 + .seconds(3)) == .miss)
        #expect(cache.lookup("b", now: t0 + .seconds(30)) == .fresh(principal("b")))
        #expect(cache.lookup("c", now: t0 + .seconds(31)) == .fresh(principal("c")))
        // New entries get the new TTLs.
        cache.storePositive("d", principal("d"), now: t0 + .seconds(40))
        #expect(cache.lookup("d", now: t0 + .seconds(45)) == .stale(principal("d")))
        #expect(cache.lookup("d", now: t0 + .seconds(55)) == .miss)
    }

    @Test func evictionSkipsRemovedEntries() {
        let cache = makeCache(maxEntries: 2)
        cache.storePositive("a", principal("a"), now: t0)
        cache.storePositive("b", principal("b"), now: t0)
        cache.remove("a")
        cache.storePositive("c", principal("c"), now: t0)
        // "a" was already gone: nothing live needed evicting.
        #expect(cache.count == 2)
        #expect(cache.lookup("b", now: t0) == .fresh(principal("b")))
        #expect(cache.lookup("c", now: t0) == .fresh(principal("c")))
        cache.storePositive("d", principal("d"), now: t0)
        #expect(cache.count == 2)
        #expect(cache.lookup("b", now: t0) == .miss)
        #expect(cache.lookup("c", now: t0) == .fresh(principal("c")))
        #expect(cache.lookup("d", now: t0) == .fresh(principal("d")))
    }

    @Test func keyRemovedAndStoredAgainCountsAsNew() {
        // A key that is invalidated (revocation message) and then cached again is the newest
        // entry; the oldest live entry must be the one evicted.
        let cache = makeCache(maxEntries: 2)
        cache.storePositive("a", principal("a"), now: t0)
        cache.remove("a")
        cache.storePositive("b", principal("b"), now: t0 + .seconds(1))
        cache.storePositive("a", principal("a"), now: t0 + .seconds(2))
        cache.storePositive("c", principal("c"), now: t0 + .seconds(3))
        #expect(cache.count == 2)
        #expect(cache.lookup("b", now: t0 + .seconds(3)) == .miss)
        #expect(cache.lookup("a", now: t0 + .seconds(3)) == .fresh(principal("a")))
        #expect(cache.lookup("c", now: t0 + .seconds(3)) == .fresh(principal("c")))
    }

    @Test func maxEntriesBelowOneIsOne() {
        let cache = makeCache(maxEntries: 0)
        cache.storePositive("a", principal("a"), now: t0)
        #expect(cache.count == 1)
        cache.storePositive("b", principal("b"), now: t0)
        #expect(cache.count == 1)
        #expect(cache.lookup("a", now: t0) == .miss)
        #expect(cache.lookup("b", now: t0) == .fresh(principal("b")))
    }

    @Test func staysBoundedUnderChurn() {
        let cache = makeCache(maxEntries: 10)
        for index in 0..<1_000 {
            cache.storePositive("k\(index)", principal("p"), now: t0)
            if index.isMultiple(of: 3) { cache.remove("k\(index - 1)") }
            #expect(cache.count <= 10)
        }
        // The ten newest survive, except those removed.
        for index in 990..<1_000 {
            let removed = (index + 1).isMultiple(of: 3)
            #expect(cache.lookup("k\(index)", now: t0) == (removed ? .miss : .fresh(principal("p"))), "k\(index)")
        }
    }

    @Test func hitAndMissCounters() {
        let cache = makeCache(positive: .seconds(10), negative: .seconds(5), grace: .seconds(60))
        #expect(cache.hits == 0 && cache.misses == 0)

        _ = cache.lookup("a", now: t0)  // miss: absent
        #expect(cache.hits == 0 && cache.misses == 1)

        cache.storePositive("a", principal("a"), now: t0)
        cache.storeNegative("n", now: t0)
        #expect(cache.hits == 0 && cache.misses == 1, "storing is not a lookup")

        _ = cache.lookup("a", now: t0 + .seconds(1))  // hit: fresh
        _ = cache.lookup("n", now: t0 + .seconds(1))  // hit: fresh negative
        #expect(cache.hits == 2 && cache.misses == 1)

        _ = cache.lookup("a", now: t0 + .seconds(20))  // miss: stale
        #expect(cache.hits == 2 && cache.misses == 2)

        _ = cache.lookup("n", now: t0 + .seconds(20))  // miss: expired negative
        _ = cache.lookup("a", now: t0 + .seconds(100))  // miss: past grace
        #expect(cache.hits == 2 && cache.misses == 4)

        cache.removeAll()
        #expect(cache.hits == 2 && cache.misses == 4, "removeAll keeps the counters")
    }
}
