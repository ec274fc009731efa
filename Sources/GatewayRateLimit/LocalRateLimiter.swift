package import GatewayCore
package import NIOCore

/// In-process token buckets for every event loop of the gateway, sharded by key so that
/// one principal's limit is exact across loops.
///
/// Each bucket is owned by exactly one loop: the shard `hash(policy, key) mod loopCount`
/// (Swift's `Hasher`: stable within the process, seeded per process, so a client cannot
/// aim many keys at one shard). A decision asked on the owning loop runs inline with no
/// future at all. A decision for a key another loop owns is submitted to that loop and the
/// result hopped back: two thread hops, the price of an exact limit in local mode (the
/// alternative, a bucket per loop, would let a client spread over N connections get N times
/// its burst; a lock would put contention on the request path).
///
/// Memory is bounded per shard: a bucket that has refilled to `burst` is equivalent to
/// none, so on each new bucket the two longest-unexamined entries are checked and dropped
/// if full; and beyond `maximumBucketsPerShard` the oldest entry goes regardless (its
/// principal then starts from a full bucket: under memory pressure the limit errs towards
/// admitting).
///
/// The object itself is immutable and `Sendable`, shared by every loop's `RateLimiter`;
/// each shard's state is touched only on its own loop (checked by `NIOLoopBoundBox`).
package final class LocalRateLimiter: Sendable {
    package static let defaultMaximumBucketsPerShard = 100_000

    /// The answer of `decide`: inline when this loop owns the key, else a future on the
    /// asking loop.
    package enum Verdict {
        case decided(RateLimitDecision)
        case pending(EventLoopFuture<RateLimitDecision>)
    }

    private let shards: [NIOLoopBoundBox<Shard>]
    /// Read on the owning loop for each decision (its monotonic view).
    private let clock: GatewayClock

    /// - Parameters:
    ///   - eventLoops: every loop that will ask (all loops of the server's group); each owns one shard.
    ///   - clock: the gateway's clock; buckets refill on its monotonic view.
    package init(
        eventLoops: [any EventLoop],
        maximumBucketsPerShard: Int = LocalRateLimiter.defaultMaximumBucketsPerShard,
        clock: GatewayClock
    ) {
        precondition(!eventLoops.isEmpty, "a LocalRateLimiter needs at least one event loop")
        self.shards = eventLoops.map { loop in
            NIOLoopBoundBox.makeBoxSendingValue(Shard(maximumBuckets: max(1, maximumBucketsPerShard)), eventLoop: loop)
        }
        self.clock = clock
    }

    /// One shard per loop of `group`.
    package convenience init(
        group: any EventLoopGroup,
        maximumBucketsPerShard: Int = LocalRateLimiter.defaultMaximumBucketsPerShard,
        clock: GatewayClock
    ) {
        self.init(eventLoops: Array(group.makeIterator()), maximumBucketsPerShard: maximumBucketsPerShard, clock: clock)
    }

    /// The loop that owns `key`'s bucket under `policy`.
    package func owner(policy: String, key: String) -> any EventLoop {
        self.shards[self.shardIndex(policy: policy, key: key)].eventLoop
    }

    /// Takes a token from `key`'s bucket. Call on `eventLoop` (the asking loop); a pending
    /// result completes there.
    package func decide(_ shape: TokenBucket.Shape, key: String, on eventLoop: any EventLoop) -> Verdict {
        let shard = self.shards[self.shardIndex(policy: shape.policy, key: key)]
        let clock = self.clock
        if shard.eventLoop.inEventLoop {
            return .decided(shard.value.take(shape, key: key, now: clock.now().uptimeNanoseconds))
        }
        // The clock is read on the owning loop, in the order the owner applies decisions.
        let future = shard.eventLoop.submit { shard.value.take(shape, key: key, now: clock.now().uptimeNanoseconds) }
        return .pending(future.hop(to: eventLoop))
    }

    /// What `decide` would answer, without taking the token (explain). Call on `eventLoop`.
    package func peek(_ shape: TokenBucket.Shape, key: String, on eventLoop: any EventLoop) -> Verdict {
        let shard = self.shards[self.shardIndex(policy: shape.policy, key: key)]
        let clock = self.clock
        if shard.eventLoop.inEventLoop {
            return .decided(shard.value.peek(shape, key: key, now: clock.now().uptimeNanoseconds))
        }
        let future = shard.eventLoop.submit { shard.value.peek(shape, key: key, now: clock.now().uptimeNanoseconds) }
        return .pending(future.hop(to: eventLoop))
    }

    /// Buckets held by the shard of the current loop (tests, metrics). Call on that loop.
    package func bucketCount(on eventLoop: any EventLoop) -> Int {
        guard let shard = self.shards.first(where: { $0.eventLoop === eventLoop }) else { return 0 }
        return shard.value.count
    }

    private func shardIndex(policy: String, key: String) -> Int {
        if self.shards.count == 1 { return 0 }
        var hasher = Hasher()
        hasher.combine(policy)
        hasher.combine(key)
        let hash = UInt(bitPattern: hasher.finalize())
        return Int(hash % UInt(self.shards.count))
    }
}

/// The buckets one loop owns. Touched only on that loop.
private final class Shard {
    private struct Key: Hashable {
        var policy: String
        var key: String
    }

    private struct Entry {
        var bucket: TokenBucket
        /// Position in `order`; an older position of the same key there is obsolete.
        var sequence: UInt64
    }

    private var entries: [Key: Entry] = [:]
    /// Keys, longest unexamined first, with the sequence they were queued under.
    private var order: CircularBuffer<(key: Key, sequence: UInt64)> = CircularBuffer(initialCapacity: 64)
    private var nextSequence: UInt64 = 0
    private let maximumBuckets: Int

    init(maximumBuckets: Int) {
        self.maximumBuckets = maximumBuckets
    }

    var count: Int { self.entries.count }

    func take(_ shape: TokenBucket.Shape, key: String, now: UInt64) -> RateLimitDecision {
        let key = Key(policy: shape.policy, key: key)
        if let index = self.entries.index(forKey: key) {
            return self.entries.values[index].bucket.reshapedTake(shape, now: now)
        }
        var bucket = TokenBucket(shape: shape, now: now)
        let decision = bucket.take(now: now)
        self.sweep(now: now, examine: 2)
        while self.entries.count >= self.maximumBuckets, let oldest = self.order.popFirst() {
            if self.entries[oldest.key]?.sequence == oldest.sequence {
                self.entries[oldest.key] = nil
            }
        }
        self.entries[key] = Entry(bucket: bucket, sequence: self.enqueue(key))
        return decision
    }

    /// The decision `take` would make, on a copy of the bucket: nothing is stored.
    func peek(_ shape: TokenBucket.Shape, key: String, now: UInt64) -> RateLimitDecision {
        var bucket = self.entries[Key(policy: shape.policy, key: key)]?.bucket ?? TokenBucket(shape: shape, now: now)
        return bucket.reshapedTake(shape, now: now)
    }

    private func enqueue(_ key: Key) -> UInt64 {
        self.nextSequence &+= 1
        self.order.append((key, self.nextSequence))
        return self.nextSequence
    }

    /// Looks at up to `examine` of the longest-unexamined entries: full ones are dropped,
    /// others go to the back of the queue. Amortised O(1) per new bucket, like Redis's
    /// sampled expiry, instead of an O(n) scan.
    private func sweep(now: UInt64, examine: Int) {
        var examined = 0
        while examined < examine, let first = self.order.first {
            self.order.removeFirst()
            guard let entry = self.entries[first.key], entry.sequence == first.sequence else {
                continue  // obsolete position: free to skip, not counted
            }
            examined += 1
            if entry.bucket.isFull(now: now) {
                self.entries[first.key] = nil
            } else {
                self.entries[first.key]?.sequence = self.enqueue(first.key)
            }
        }
    }
}

extension TokenBucket {
    /// `take`, after adopting `shape` if the policy changed since the bucket was made.
    fileprivate mutating func reshapedTake(_ shape: Shape, now: UInt64) -> RateLimitDecision {
        if shape != self.shape { self.reshape(to: shape, now: now) }
        return self.take(now: now)
    }
}
