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
