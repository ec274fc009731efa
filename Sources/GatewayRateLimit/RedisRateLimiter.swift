import GatewayCore
import GatewayCrypto
package import GatewayRedis
package import NIOCore

/// Token buckets shared by every gateway instance through Redis, decided by an atomic Lua
/// script run by `EVALSHA` on this loop's pipelined connection: the decisions asked during one
/// loop tick wait for its end and go together, one script call per destination
/// (`RateLimitBatch`), each still answered with its own result.
///
/// The script takes Redis `TIME` as the clock, so instances with skewed clocks agree; it
/// keeps the credit and its timestamp in one string key `<prefix>rl:<policy>:<bucket key>`
/// with an expiry at the moment the bucket would be full again, so idle buckets vanish on
/// their own. Arithmetic is in integers (microseconds; one token is `period × 10⁶` units,
/// `rate` units per µs).
///
/// Nothing waits longer than `timeout` (the Redis command timeout) from the moment it was
/// asked: a decision whose reply has not come by then fails with `RateLimitStoreError.timeout`,
/// also while the client is still connecting (its connect timeout may be longer) or
/// re-loading the script after `NOSCRIPT`. A reply arriving later is dropped for that
/// decision (the token it took in Redis is lost; that errs towards refusing, by at most one
/// token per timed-out request). A failed call or a reply that does not parse fails every
/// decision it carried, each then handled by `RateLimiter` as on its own.
///
/// Touched only on its event loop (the `RedisClient`'s).
package final class RedisRateLimiter {
    package let client: RedisClient
    package let keyPrefix: String
    package let timeout: TimeAmount
    package var eventLoop: any EventLoop { self.client.eventLoop }

    /// Decisions waiting for Redis, by id, and their deadlines in order: every deadline is
    /// `now + timeout`, so arrival order is deadline order and one timer serves them all.
    private var waiting: [UInt64: EventLoopPromise<RateLimitDecision>] = [:]
    private var deadlines: CircularBuffer<(id: UInt64, deadline: NIODeadline)> = CircularBuffer(initialCapacity: 16)
    private var nextID: UInt64 = 0
    private lazy var deadline = LoopTimer { [weak self] in self?.oldestDecisionDue() }
    /// Decisions asked during this tick, sent when it ends.
    private var batch = RateLimitBatch()
    /// On a cluster the buckets spread over the slots, and one call serves one slot.
    private let groupsBySlot: Bool

    /// Script calls sent, by how many decisions each carried (index 1...`maximumPerCall`).
    package private(set) var callsByDecisions = [Int](repeating: 0, count: RateLimitBatch.maximumPerCall + 1)

    package init(client: RedisClient, keyPrefix: String, timeout: TimeAmount) {
        self.client = client
        self.keyPrefix = keyPrefix
        self.timeout = timeout
        self.groupsBySlot = client.settings.cluster != nil
    }

    /// With the client's own `key_prefix` and `command_timeout` (what the gateway uses).
    package convenience init(client: RedisClient) {
        self.init(
            client: client,
            keyPrefix: client.settings.keyPrefix,
            timeout: client.settings.commandTimeout.timeAmount
        )
    }

    /// Takes a token from `key`'s shared bucket. Call on the client's loop; the future
    /// completes there, failing with a `RedisClientError` or `RateLimitStoreError.timeout`
    /// when Redis cannot decide in time.
    package func decide(_ shape: TokenBucket.Shape, key: String) -> EventLoopFuture<RateLimitDecision> {
        self.enqueue(shape, key: key, take: true)
    }

    /// What `decide` would answer, computed without writing anything (explain).
    package func peek(_ shape: TokenBucket.Shape, key: String) -> EventLoopFuture<RateLimitDecision> {
        self.enqueue(shape, key: key, take: false)
    }

    private func enqueue(_ shape: TokenBucket.Shape, key: String, take: Bool) -> EventLoopFuture<RateLimitDecision> {
        self.eventLoop.preconditionInEventLoop()
        let promise = self.eventLoop.makePromise(of: RateLimitDecision.self)
        self.nextID &+= 1
        let id = self.nextID
        self.waiting[id] = promise
        let deadline = self.eventLoop.now + self.timeout
        self.deadlines.append((id, deadline))
        if self.deadline.deadline == nil {
            self.deadline.arm(at: deadline, on: self.eventLoop)
        }
        let redisKey = Self.redisKey(prefix: self.keyPrefix, policy: shape.policy, key: key)
        let destination = self.groupsBySlot ? ClusterSlot.of(redisKey) : 0
        let entry = RateLimitBatch.Entry(id: id, key: redisKey, shape: shape, take: take)
        if self.batch.append(entry, destination: destination) {
            // Decisions asked later in this tick join the batch; it leaves at the tick's end,
            // before the client's flush of the same tick (scheduled after it).
            let loopBound = NIOLoopBound(self, eventLoop: self.eventLoop)
            self.eventLoop.execute { loopBound.value.flush() }
        }
        return promise.futureResult
    }

    private func flush() {
        for call in self.batch.drain() {
            self.send(call)
        }
    }

    private func send(_ call: RateLimitBatch.Call) {
        self.callsByDecisions[call.entries.count] += 1
        self.client.evaluate(script: RateLimitBatch.script, keys: call.keys, arguments: call.arguments)
            .assumeIsolated().whenComplete { result in
                let decisions: Result<[RateLimitDecision], any Error>
                switch result {
                case .success(let reply):
                    if let parsed = RateLimitBatch.decisions(from: reply, for: call.entries) {
                        decisions = .success(parsed)
                    } else {
                        decisions = .failure(RedisClientError.protocolError("unexpected rate-limit script reply"))
                    }
                case .failure(let error):
                    decisions = .failure(error)
                }
                // Every waiter leaves before any is completed: a completion may ask again.
                var answered: [(EventLoopPromise<RateLimitDecision>, Int)] = []
                answered.reserveCapacity(call.entries.count)
                for (index, entry) in call.entries.enumerated() {
                    // Gone already when it timed out.
                    if let promise = self.waiting.removeValue(forKey: entry.id) { answered.append((promise, index)) }
                }
                self.dropAnsweredDeadlines()
                for (promise, index) in answered {
                    switch decisions {
                    case .success(let parsed): promise.succeed(parsed[index])
                    case .failure(let error): promise.fail(error)
                    }
                }
            }
    }

    /// Decisions waiting for Redis right now (tests).
    package var waitingCount: Int { self.waiting.count }

    /// Replies come in order, so answered decisions leave from the front and the queue
    /// stays as short as the pipeline; with nothing left to time out, the deadline is off.
    private func dropAnsweredDeadlines() {
        while let first = self.deadlines.first, self.waiting[first.id] == nil {
            self.deadlines.removeFirst()
        }
        if self.deadlines.isEmpty {
            self.deadline.disarm()
        }
    }

    private func oldestDecisionDue() {
        let now = self.eventLoop.now
        while let first = self.deadlines.first {
            if self.waiting[first.id] == nil {
                self.deadlines.removeFirst()  // answered in time
                continue
            }
            guard first.deadline <= now else { break }
            self.deadlines.removeFirst()
            self.waiting.removeValue(forKey: first.id)?.fail(RateLimitStoreError.timeout)
        }
        if let next = self.deadlines.first {
            self.deadline.arm(at: next.deadline, on: self.eventLoop)
        }
    }

    // MARK: the bucket's key

    private static func isKeptAsIs(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "@"), UInt8(ascii: ":"):
            return true
        default:
            return false
        }
    }

    /// `<prefix>rl:<policy>:k:<escaped key>`, or `...:h:<sha256 hex>` when the escaped key
    /// would be longer than 128 bytes. Escaping keeps `A-Z a-z 0-9 _ . - @ :` and writes
    /// every other byte as `%XX`, so distinct keys stay distinct, readable in `redis-cli`
    /// (key ids, addresses, subjects), and never contain spaces, braces (cluster hash
    /// tags) or control bytes. The `k:`/`h:` tag keeps the two forms from colliding.
    package static func redisKey(prefix: String, policy: String, key: String) -> String {
        // Key ids, subjects and addresses are almost always plain already: one scan, no copy.
        if key.utf8.count <= 128, key.utf8.allSatisfy(Self.isKeptAsIs) {
            return "\(prefix)rl:\(policy):k:\(key)"
        }
        var escaped = ""
        escaped.reserveCapacity(key.utf8.count)
        let hex: [Character] = Array("0123456789ABCDEF")
        for byte in key.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"),
                UInt8(ascii: "@"), UInt8(ascii: ":"):
                escaped.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                escaped.append("%")
                escaped.append(hex[Int(byte >> 4)])
                escaped.append(hex[Int(byte & 0x0F)])
            }
            if escaped.utf8.count > 128 { break }
        }
        if escaped.utf8.count <= 128 {
            return "\(prefix)rl:\(policy):k:\(escaped)"
        }
        let digest = Digest.sha256.hash(Array(key.utf8))
        var hashed = ""
        for byte in digest {
            hashed.append(hex[Int(byte >> 4)])
            hashed.append(hex[Int(byte & 0x0F)])
        }
        return "\(prefix)rl:\(policy):h:\(hashed.lowercased())"
    }
}

/// The rate-limit store did not answer in time.
package enum RateLimitStoreError: Error, Hashable, Sendable {
    case timeout
}
