/// Request counters and latency histograms of one event loop.
///
/// Plain integers touched only on their loop: recording costs no lock and no atomic. The
/// admin listener asks each loop for a `Snapshot` (a hop per scrape, not per request) and
/// merges them into the Prometheus exposition.
package final class LoopMetrics {
    /// One counter series of `dbgw_requests_total`.
    package struct RequestKey: Hashable, Sendable {
        /// `METHOD pattern` of the matched route, `unmatched`, `builtin` or `invalid`.
        package var route: String
        package var outcome: String
        package var status: Int
        package var credential: String
    }

    /// Cumulative histogram over fixed buckets, in seconds.
    package struct Histogram: Sendable {
        /// Upper bounds in seconds (Prometheus `le`), `+Inf` implied.
        package static let bounds: [Double] = [
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
        ]
        package private(set) var buckets = [Int](repeating: 0, count: Histogram.bounds.count + 1)
        package private(set) var sumSeconds: Double = 0
        package private(set) var count = 0

        package init() {}

        package mutating func observe(microseconds: Int64) {
            let seconds = Double(microseconds) / 1_000_000
            var index = 0
            while index < Self.bounds.count, seconds > Self.bounds[index] { index += 1 }
            self.buckets[index] += 1
            self.sumSeconds += seconds
            self.count += 1
        }

        package mutating func merge(_ other: Histogram) {
            for index in self.buckets.indices { self.buckets[index] += other.buckets[index] }
            self.sumSeconds += other.sumSeconds
            self.count += other.count
        }
    }

    /// Cumulative histogram of counts (how many items one operation carried) over powers of
    /// two.
    package struct CountHistogram: Sendable {
        /// Upper bounds (Prometheus `le`), `+Inf` implied.
        package static let bounds: [Int] = [1, 2, 4, 8, 16, 32, 64]
        package private(set) var buckets = [Int](repeating: 0, count: CountHistogram.bounds.count + 1)
        package private(set) var sum = 0
        package private(set) var count = 0

        package init() {}

        /// `times` operations that carried `value` items each.
        package mutating func observe(_ value: Int, times: Int = 1) {
            guard times > 0 else { return }
            let index = Self.bounds.firstIndex { value <= $0 } ?? Self.bounds.count
            self.buckets[index] += times
            self.sum += value * times
            self.count += times
        }

        package mutating func merge(_ other: CountHistogram) {
            for index in self.buckets.indices { self.buckets[index] += other.buckets[index] }
            self.sum += other.sum
            self.count += other.count
        }
    }

    /// Everything one loop has counted, copied out for a scrape.
    package struct Snapshot: Sendable {
        package var requests: [RequestKey: Int] = [:]
        package var total = Histogram()
        package var upstream = Histogram()
        package var auth = Histogram()
        package var cacheHits = 0
        package var cacheMisses = 0
        package var authFailuresCharged = 0
        package var authFailureRefusals = 0
        package var upstreamConnectionsOpen = 0
        package var upstreamConnectionsIdle = 0
        package var upstreamConnectFailures = 0
        package var jwtCacheHits = 0
        package var jwtCacheMisses = 0
        package var opaqueTokenCacheHits = 0
        package var opaqueTokenCacheMisses = 0
        package var introspectionRequests = 0
        package var introspectionCacheHits = 0
        package var rateLimitRedisDecisions = 0
        package var rateLimitLocalDecisions = 0
        package var rateLimitFallbackDecisions = 0
        package var rateLimitDeniedUnavailable = 0
        /// Redis rate-limit script calls by the decisions each carried.
        package var rateLimitDecisionsPerRedisCall = CountHistogram()

        package init() {}

        package mutating func merge(_ other: Snapshot) {
            self.requests.merge(other.requests, uniquingKeysWith: +)
            self.total.merge(other.total)
            self.upstream.merge(other.upstream)
            self.auth.merge(other.auth)
            self.cacheHits += other.cacheHits
            self.cacheMisses += other.cacheMisses
            self.authFailuresCharged += other.authFailuresCharged
            self.authFailureRefusals += other.authFailureRefusals
            self.upstreamConnectionsOpen += other.upstreamConnectionsOpen
            self.upstreamConnectionsIdle += other.upstreamConnectionsIdle
            self.upstreamConnectFailures += other.upstreamConnectFailures
            self.jwtCacheHits += other.jwtCacheHits
            self.jwtCacheMisses += other.jwtCacheMisses
            self.opaqueTokenCacheHits += other.opaqueTokenCacheHits
            self.opaqueTokenCacheMisses += other.opaqueTokenCacheMisses
            self.introspectionRequests += other.introspectionRequests
            self.introspectionCacheHits += other.introspectionCacheHits
            self.rateLimitRedisDecisions += other.rateLimitRedisDecisions
            self.rateLimitLocalDecisions += other.rateLimitLocalDecisions
            self.rateLimitFallbackDecisions += other.rateLimitFallbackDecisions
            self.rateLimitDeniedUnavailable += other.rateLimitDeniedUnavailable
            self.rateLimitDecisionsPerRedisCall.merge(other.rateLimitDecisionsPerRedisCall)
        }
    }

    private(set) var snapshotStorage = Snapshot()
    /// The series the previous request counted and where its counter is: consecutive
    /// requests mostly share route, outcome, status and credential, and comparing strings
    /// that share their storage costs less than hashing them. Only `record` inserts into
    /// `requests`, and it refreshes the index after each insertion, so the index stays
    /// valid (a copy for a scrape keeps its indices too).
    private var lastRequest = LastRequest()

    /// The previous request's series and its counter's index. Owned by its `LoopMetrics`,
    /// on that loop.
    private struct LastRequest {
        var key: RequestKey?
        var index: Dictionary<RequestKey, Int>.Index?
    }

    package init() {}

    func record(
        route: String,
        outcome: String,
        status: Int,
        credential: String?,
        totalMicroseconds: Int64,
        upstreamMicroseconds: Int64?,
        authMicroseconds: Int64?
    ) {
        let key = RequestKey(route: route, outcome: outcome, status: status, credential: credential ?? "none")
        // One access to each stored property (each is an exclusivity check on a class).
        Self.record(
            key,
            total: totalMicroseconds,
            upstream: upstreamMicroseconds,
            auth: authMicroseconds,
            in: &self.snapshotStorage,
            last: &self.lastRequest
        )
    }

    private static func record(
        _ key: RequestKey,
        total: Int64,
        upstream: Int64?,
        auth: Int64?,
        in storage: inout Snapshot,
        last: inout LastRequest
    ) {
        if let index = last.index, last.key == key {
            storage.requests.values[index] += 1
        } else if let index = storage.requests.index(forKey: key) {
            storage.requests.values[index] += 1
            last = LastRequest(key: key, index: index)
        } else {
            storage.requests[key] = 1
            last = LastRequest(key: key, index: storage.requests.index(forKey: key))
        }
        storage.total.observe(microseconds: total)
        if let upstream {
            storage.upstream.observe(microseconds: upstream)
        }
        if let auth {
            storage.auth.observe(microseconds: auth)
        }
    }

    func upstreamConnectFailed() {
        self.snapshotStorage.upstreamConnectFailures += 1
    }

    /// A copy of the counters with the gauges of `loop` filled in.
    package func snapshot(loop: LoopContext) -> Snapshot {
        var snapshot = self.snapshotStorage
        snapshot.cacheHits = loop.authenticator.cacheHits
        snapshot.cacheMisses = loop.authenticator.cacheMisses
        snapshot.authFailuresCharged = loop.authenticator.failuresCharged
        snapshot.authFailureRefusals = loop.authenticator.failureRefusals
        snapshot.upstreamConnectionsOpen = loop.pool.openConnections
        snapshot.upstreamConnectionsIdle = loop.pool.idleCount
        snapshot.jwtCacheHits = loop.authenticator.jwt?.cacheHits ?? 0
        snapshot.jwtCacheMisses = loop.authenticator.jwt?.cacheMisses ?? 0
        snapshot.opaqueTokenCacheHits = loop.authenticator.opaqueTokens?.cacheHits ?? 0
        snapshot.opaqueTokenCacheMisses = loop.authenticator.opaqueTokens?.cacheMisses ?? 0
        snapshot.introspectionRequests = loop.authenticator.introspection?.introspections ?? 0
        snapshot.introspectionCacheHits = loop.authenticator.introspection?.cacheHits ?? 0
        snapshot.rateLimitRedisDecisions = loop.rateLimiter.redisDecisions
        snapshot.rateLimitLocalDecisions = loop.rateLimiter.localDecisions
        snapshot.rateLimitFallbackDecisions = loop.rateLimiter.fallbackDecisions
        snapshot.rateLimitDeniedUnavailable = loop.rateLimiter.deniedUnavailable
        for (decisions, calls) in loop.rateLimiter.redisCallsByDecisions.enumerated() {
            snapshot.rateLimitDecisionsPerRedisCall.observe(decisions, times: calls)
        }
        return snapshot
    }
}
