import Testing

@testable import GatewayProxy

@Suite struct LoopMetricsCountHistogramTests {
    /// The decisions-per-call histogram: each count lands in the first bucket whose bound it
    /// does not exceed, and merging loops adds bucket by bucket.
    @Test func countsLandInTheirPowerOfTwoBucketAndMerge() {
        var first = LoopMetrics.CountHistogram()
        first.observe(1, times: 3)
        first.observe(2)
        first.observe(3)
        first.observe(64, times: 2)
        first.observe(65)
        first.observe(9, times: 0)
        #expect(first.buckets == [3, 1, 1, 0, 0, 0, 2, 1])
        #expect(first.count == 8)
        #expect(first.sum == 3 + 2 + 3 + 128 + 65)
        var second = LoopMetrics.CountHistogram()
        second.observe(16, times: 4)
        second.merge(first)
        #expect(second.buckets == [3, 1, 1, 0, 4, 0, 2, 1])
        #expect(second.count == 12)
        #expect(second.sum == 64 + 201)
    }
}

@Suite struct LoopMetricsRequestCounterTests {
    /// A series repeated, interleaved with others, new series inserted between repeats (a
    /// dictionary grows and moves its entries) and copies taken as a scrape does: every
    /// series counts exactly its requests.
    @Test func everySeriesCountsItsRequests() {
        let metrics = LoopMetrics()
        var expected: [LoopMetrics.RequestKey: Int] = [:]
        var copies: [(LoopMetrics.Snapshot, [LoopMetrics.RequestKey: Int])] = []
        let routes = ["GET /v1/databases/*", "POST /v1/alerts", "unmatched"]
        for step in 0..<600 {
            // Mostly the same series, a new one now and then, an older one in between.
            let route = step % 7 == 0 ? "GET /v1/r\(step)" : routes[step % 13 == 0 ? 1 : step % 29 == 0 ? 2 : 0]
            let status = step % 11 == 0 ? 404 : 200
            let credential: String? = step % 17 == 0 ? nil : "jwt"
            metrics.record(
                route: route,
                outcome: "forwarded",
                status: status,
                credential: credential,
                totalMicroseconds: Int64(step),
                upstreamMicroseconds: step % 2 == 0 ? 10 : nil,
                authMicroseconds: nil
            )
            let key = LoopMetrics.RequestKey(
                route: route,
                outcome: "forwarded",
                status: status,
                credential: credential ?? "none"
            )
            expected[key, default: 0] += 1
            if step % 97 == 0 {
                copies.append((metrics.snapshotStorage, expected))
            }
        }
        #expect(metrics.snapshotStorage.requests == expected)
        #expect(metrics.snapshotStorage.total.count == 600)
        #expect(metrics.snapshotStorage.upstream.count == 300)
        #expect(metrics.snapshotStorage.auth.count == 0)
        // A copy keeps what it had when taken.
        for (copy, counted) in copies {
            #expect(copy.requests == counted)
        }
    }
}
