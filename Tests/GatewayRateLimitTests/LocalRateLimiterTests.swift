import GatewayConfig
import GatewayTestSupport
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import GatewayRateLimit

/// Runs `body` with a fresh group of `loops` loops, shut down afterwards.
func withGroup<T>(loops: Int, _ body: (MultiThreadedEventLoopGroup) async throws -> T) async throws -> T {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: loops)
    let result: Result<T, any Error>
    do {
        result = .success(try await body(group))
    } catch {
        result = .failure(error)
    }
    try? await group.shutdownGracefully()
    return try result.get()
}

extension LocalRateLimiter.Verdict {
    /// The decision, waiting for it if it is pending. `inline` tells which it was.
    func resolved() async throws -> (decision: RateLimitDecision, inline: Bool) {
        switch self {
        case .decided(let decision): return (decision, true)
        case .pending(let future): return (try await future.get(), false)
        }
    }
}

private let shape = TokenBucket.Shape(policy: "p", rate: 1, periodSeconds: 3600, burst: 25)

@Suite struct LocalRateLimiterTests {
    @Test func concurrentDecisionsFromEveryLoopAdmitExactlyBurst() async throws {
        try await withGroup(loops: 4) { group in
            let clock = ManualClock()
            let limiter = LocalRateLimiter(group: group, clock: clock.clock)
            let loops = Array(group.makeIterator())
            // 4 × burst decisions for one key, a quarter asked on each loop, all at once.
            let futures = loops.flatMap { loop in
                (0..<Int(shape.burst)).map { _ in
                    loop.flatSubmit { () -> EventLoopFuture<(Bool, Bool)> in
                        switch limiter.decide(shape, key: "alice", on: loop) {
                        case .decided(let decision): return loop.makeSucceededFuture((decision.allowed, true))
                        case .pending(let future):
                            return future.map { decision in
                                loop.preconditionInEventLoop()  // hopped back to the asking loop
                                return (decision.allowed, false)
                            }
                        }
                    }
                }
            }
            let results = try await EventLoopFuture.whenAllSucceed(futures, on: group.any()).get()
            #expect(results.filter(\.0).count == Int(shape.burst))
            // Exactly one loop owns the key: its quarter ran inline, the rest hopped.
            #expect(results.filter(\.1).count == Int(shape.burst))
            let owner = limiter.owner(policy: "p", key: "alice")
            let held = try await owner.submit { limiter.bucketCount(on: owner) }.get()
            #expect(held == 1)
        }
    }

    @Test func differentKeysAndPoliciesAreIndependent() async throws {
        try await withGroup(loops: 3) { group in
            let clock = ManualClock()
            let limiter = LocalRateLimiter(group: group, clock: clock.clock)
            let loop = group.next()
            let small = TokenBucket.Shape(policy: "small", rate: 1, periodSeconds: 60, burst: 2)
            let other = TokenBucket.Shape(policy: "other", rate: 1, periodSeconds: 60, burst: 2)
            func allowed(_ shape: TokenBucket.Shape, _ key: String) async throws -> Bool {
                try await loop.flatSubmit { () -> EventLoopFuture<Bool> in
                    switch limiter.decide(shape, key: key, on: loop) {
                    case .decided(let decision): return loop.makeSucceededFuture(decision.allowed)
                    case .pending(let future): return future.map(\.allowed)
                    }
                }.get()
            }
            var answers: [Bool] = []
            answers.append(try await allowed(small, "a"))
            answers.append(try await allowed(small, "a"))
            answers.append(try await allowed(small, "a"))
            answers.append(try await allowed(small, "b"))
            answers.append(try await allowed(other, "a"))
            #expect(answers == [true, true, false, true, true])
            clock.advance(seconds: 60)
            let afterAMinute = [try await allowed(small, "a"), try await allowed(small, "a")]
            #expect(afterAMinute == [true, false])
        }
    }

    /// Explain's view of a local bucket: `decide`'s answer, no token taken, no bucket made.
    @Test func peekAnswersAsDecideWouldWithoutTakingATokenOrMakingABucket() async throws {
        try await withGroup(loops: 2) { group in
            let clock = ManualClock()
            let limiter = LocalRateLimiter(group: group, clock: clock.clock)
            let small = TokenBucket.Shape(policy: "small", rate: 1, periodSeconds: 60, burst: 2)
            let asking = group.next()
            func run(_ peek: Bool) async throws -> RateLimitDecision {
                try await asking.flatSubmit { () -> EventLoopFuture<RateLimitDecision> in
                    let verdict =
                        peek ? limiter.peek(small, key: "a", on: asking) : limiter.decide(small, key: "a", on: asking)
                    switch verdict {
                    case .decided(let decision): return asking.makeSucceededFuture(decision)
                    case .pending(let future): return future
                    }
                }.get()
            }
            let fresh = try await run(true)
            #expect(fresh.allowed && fresh.remaining == 1)
            #expect(try await run(true) == fresh)
            let owner = limiter.owner(policy: "small", key: "a")
            #expect(try await owner.submit { limiter.bucketCount(on: owner) }.get() == 0)
            #expect(try await run(false) == fresh)
            #expect(try await run(true).remaining == 0)
            #expect(try await run(false).allowed)
            let empty = try await run(true)
            #expect(!empty.allowed)
            #expect(try await run(false) == empty)
        }
    }

    @Test func fullBucketsAreEvictedAndTheShardIsCapped() async throws {
        try await withGroup(loops: 1) { group in
            let clock = ManualClock()
            let loop = group.next()
            let limiter = LocalRateLimiter(group: group, maximumBucketsPerShard: 50, clock: clock.clock)
            let quick = TokenBucket.Shape(policy: "q", rate: 1, periodSeconds: 1, burst: 1)
            try await loop.submit {
                for index in 0..<40 { _ = limiter.decide(quick, key: "k\(index)", on: loop) }
                precondition(limiter.bucketCount(on: loop) == 40)
            }.get()
            #expect(try await loop.submit { limiter.bucketCount(on: loop) }.get() == 40)
            // One second later every bucket is full again: new keys sweep them out.
            clock.advance(seconds: 1)
            let afterSweep = try await loop.submit {
                for index in 0..<20 { _ = limiter.decide(quick, key: "n\(index)", on: loop) }
                return limiter.bucketCount(on: loop)
            }.get()
            #expect(afterSweep == 20)
            // Without time passing nothing is full: the cap evicts the oldest instead.
            let capped = try await loop.submit {
                for index in 0..<200 { _ = limiter.decide(quick, key: "c\(index)", on: loop) }
                return limiter.bucketCount(on: loop)
            }.get()
            #expect(capped == 50)
            // The newest keys are the ones kept: "c199" is still limited, "n0" (evicted) is not.
            let (kept, evicted) = try await loop.submit { () -> (Bool, Bool) in
                guard case .decided(let newest) = limiter.decide(quick, key: "c199", on: loop),
                    case .decided(let oldest) = limiter.decide(quick, key: "n0", on: loop)
                else { return (true, false) }
                return (newest.allowed, oldest.allowed)
            }.get()
            #expect(!kept)
            #expect(evicted)
        }
    }

    @Test func policyChangeOnReloadKeepsTheBucket() async throws {
        try await withGroup(loops: 1) { group in
            let clock = ManualClock()
            let loop = group.next()
            let limiter = LocalRateLimiter(group: group, clock: clock.clock)
            let before = TokenBucket.Shape(policy: "r", rate: 1, periodSeconds: 60, burst: 5)
            let after = TokenBucket.Shape(policy: "r", rate: 1, periodSeconds: 60, burst: 2)
            let results = try await loop.submit { () -> [Int] in
                var remaining: [Int] = []
                for _ in 0..<2 {
                    if case .decided(let decision) = limiter.decide(before, key: "k", on: loop) {
                        remaining.append(decision.remaining)
                    }
                }
                for _ in 0..<2 {
                    if case .decided(let decision) = limiter.decide(after, key: "k", on: loop) {
                        remaining.append(decision.allowed ? decision.remaining : -1)
                    }
                }
                return remaining
            }.get()
            #expect(results == [4, 3, 1, 0])
        }
    }
}
