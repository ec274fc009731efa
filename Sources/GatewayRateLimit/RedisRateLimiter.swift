import GatewayCore
import GatewayCrypto
package import GatewayRedis
package import NIOCore

/// Token buckets shared by every gateway instance through Redis: one
/// atomic Lua script per decision, run by `EVALSHA` on this loop's pipelined connection.
///
/// The script takes Redis `TIME` as the clock, so instances with skewed clocks agree; it
/// keeps the credit and its timestamp in one string key `<prefix>rl:<policy>:<bucket key>`
/// with an expiry at the moment the bucket would be full again, so idle buckets vanish on
/// their own. Arithmetic is in integers (microseconds; one token is `period × 10⁶` units,
/// `rate` units per µs): at most 3.6·10¹⁵, exact in Lua's doubles (< 2⁵³). Numbers are
/// written with `%d`, as Lua's default conversion keeps only 14 significant digits.
///
/// Nothing waits longer than `timeout` (the Redis command timeout): a decision whose reply
/// has not come by then fails with `RateLimitStoreError.timeout`, also while the client is
/// still connecting (its connect timeout may be longer) or re-loading the script after
/// `NOSCRIPT`. A reply arriving later is dropped (the token it took in Redis is lost; that
/// errs towards refusing, by at most one token per timed-out request).
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

    package init(client: RedisClient, keyPrefix: String, timeout: TimeAmount) {
        self.client = client
        self.keyPrefix = keyPrefix
        self.timeout = timeout
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
        self.run(Self.script, shape, key: key)
    }

    /// What `decide` would answer, computed by a script that writes nothing (explain).
    package func peek(_ shape: TokenBucket.Shape, key: String) -> EventLoopFuture<RateLimitDecision> {
        self.run(Self.peekScript, shape, key: key)
    }

    private func run(_ script: String, _ shape: TokenBucket.Shape, key: String) -> EventLoopFuture<RateLimitDecision> {
        self.eventLoop.preconditionInEventLoop()
        let promise = self.eventLoop.makePromise(of: RateLimitDecision.self)
        self.nextID &+= 1
        let id = self.nextID
        self.waiting[id] = promise
        let redisKey = Self.redisKey(prefix: self.keyPrefix, policy: shape.policy, key: key)
        self.client.evaluate(
            script: script,
            keys: [redisKey],
            arguments: [String(shape.rate), String(shape.periodSeconds * 1_000_000), String(shape.burst)]
        ).assumeIsolated().whenComplete { result in
            guard let promise = self.waiting.removeValue(forKey: id) else { return }  // timed out already
            self.dropAnsweredDeadlines()
            switch result {
            case .success(let reply):
                switch Self.decision(from: reply, shape: shape) {
                case .some(let decision): promise.succeed(decision)
                case .none: promise.fail(RedisClientError.protocolError("unexpected rate-limit script reply"))
                }
            case .failure(let error):
                promise.fail(error)
            }
        }
        // Only a decision still waiting needs the deadline: during an outage the client
        // fails at once (back-off), and no timer is armed for it.
        if self.waiting[id] != nil {
            let deadline = self.eventLoop.now + self.timeout
            self.deadlines.append((id, deadline))
            if self.deadline.deadline == nil {
                self.deadline.arm(at: deadline, on: self.eventLoop)
            }
        }
        return promise.futureResult
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

    // MARK: the script and its key

    /// KEYS[1]: the bucket. ARGV: rate (units per µs), units per token (the period in µs),
    /// burst. Returns {allowed (0/1), credit after the decision}.
    package static let script =
        refill + """
            local allowed = 0
            if credit >= per_token then
              credit = credit - per_token
              allowed = 1
            end
            local missing = capacity - credit
            if missing > 0 then
              local ms = math.floor(missing / rate / 1000) + 2
              redis.call('SET', KEYS[1], string.format('%d %d', credit, now), 'PX', string.format('%d', ms))
            else
              redis.call('DEL', KEYS[1])
            end
            return {allowed, credit}
            """

    /// The same arguments and reply as `script`, for a take that is not made: the bucket is
    /// only read, so explaining a request never spends a caller's token.
    package static let peekScript =
        refill + """
            if credit >= per_token then return {1, credit - per_token} end
            return {0, credit}
            """

    /// The bucket's credit at Redis `TIME`, shared by both scripts.
    private static let refill = """
        if redis.replicate_commands then redis.replicate_commands() end
        local rate = tonumber(ARGV[1])
        local per_token = tonumber(ARGV[2])
        local capacity = tonumber(ARGV[3]) * per_token
        local time = redis.call('TIME')
        local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
        local credit = capacity
        local stored = redis.call('GET', KEYS[1])
        if stored then
          local c, t = string.match(stored, '^(%d+) (%d+)$')
          if c then
            credit = tonumber(c)
            local last = tonumber(t)
            if now > last then
              local gained = (now - last) * rate
              if gained >= capacity - credit then credit = capacity else credit = credit + gained end
            else
              now = last
            end
            if credit > capacity then credit = capacity end
          end
        end

        """
    // Notes on the script:
    // - replicate_commands: TIME before a write needs effects replication, the default
    //   since Redis 5 and the only mode in 7 (where the call is a no-op); kept for 3.2-4.
    // - `now = last` when TIME went backwards (a failover to a server behind): no refill,
    //   and the later stamp is kept so the interval is not credited twice.
    // - The expiry errs late (+2 ms, rounded down then up): a bucket kept a little past
    //   full is still full (capped), whereas one dropped early would hand out tokens.
    // - A stored value that does not parse is treated as a full bucket.

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

    /// The decision in the script's reply `{allowed, credit}`, or nil if it is not one.
    static func decision(from reply: RESPValue, shape: TokenBucket.Shape) -> RateLimitDecision? {
        guard case .array(let values) = reply, values.count == 2,
            case .integer(let allowed) = values[0], allowed == 0 || allowed == 1,
            case .integer(let credit) = values[1], credit >= 0
        else { return nil }
        return RateLimitDecision(shape: shape, allowed: allowed == 1, credit: credit, ticksPerSecond: 1_000_000)
    }
}

/// The rate-limit store did not answer in time.
package enum RateLimitStoreError: Error, Hashable, Sendable {
    case timeout
}
