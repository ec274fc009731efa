import GatewayRedis

/// The rate-limit decisions of one event loop waiting for the end of the loop's tick, and
/// the script that applies them: every decision asked during a tick goes to Redis in one
/// `EVALSHA` per destination, instead of one command and one reply per request.
///
/// A destination is the whole server on a single Redis or Sentinel; on a Redis Cluster it is
/// the slot of the bucket's key (a script may only touch keys of one slot, and the buckets
/// spread over every slot). A call carries at most `maximumPerCall` decisions; more make
/// several calls, sent in order on the same connection, so Redis applies them in the order
/// they were asked.
///
/// Pure state: the first `append` of a tick says the owner must schedule a flush, `drain`
/// hands over the calls to send, `decisions(from:for:)` reads a reply. A value owned by its
/// loop's `RedisRateLimiter`, touched only on that loop.
struct RateLimitBatch {
    /// One decision waiting for its call.
    struct Entry {
        /// The owner's id of the waiter.
        let id: UInt64
        /// The bucket's Redis key.
        let key: String
        let shape: TokenBucket.Shape
        /// False: explain's look at the bucket, which writes nothing.
        let take: Bool
    }

    /// One script call: its keys and arguments, and the decisions they stand for, in order.
    struct Call {
        let entries: [Entry]

        /// `KEYS`: one bucket key per decision (a key may repeat).
        var keys: [String] { self.entries.map(\.key) }

        /// `ARGV`: four per decision: take (1) or peek (0), the rate in units per µs, the
        /// units of one token (the period in µs), the burst.
        var arguments: [String] {
            var arguments: [String] = []
            arguments.reserveCapacity(self.entries.count * 4)
            for entry in self.entries {
                arguments.append(entry.take ? "1" : "0")
                arguments.append(String(entry.shape.rate))
                arguments.append(String(entry.shape.periodSeconds * RateLimitBatch.ticksPerSecond))
                arguments.append(String(entry.shape.burst))
            }
            return arguments
        }
    }

    /// Bounds a call's size (its keys, arguments and the script's run time, during which
    /// Redis serves nobody else).
    static let maximumPerCall = 64

    /// The script's clock: Redis `TIME` in microseconds.
    static let ticksPerSecond: Int64 = 1_000_000

    private var groups: [(destination: Int, entries: [Entry])] = []
    /// The group of each destination: on a cluster one tick may touch many slots.
    private var groupIndex: [Int: Int] = [:]

    var isEmpty: Bool { self.groups.isEmpty }

    /// Adds a decision for `destination`. True when it is the first since the last `drain`:
    /// the owner then schedules the flush at the end of the tick.
    mutating func append(_ entry: Entry, destination: Int) -> Bool {
        let first = self.groups.isEmpty
        if let index = self.groupIndex[destination] {
            self.groups[index].entries.append(entry)
        } else {
            self.groupIndex[destination] = self.groups.count
            self.groups.append((destination, [entry]))
        }
        return first
    }

    /// Every waiting decision as calls of at most `maximumPerCall`: destinations in the order
    /// they were first asked, decisions in the order they were asked. Leaves the batch empty.
    mutating func drain() -> [Call] {
        var calls: [Call] = []
        for group in self.groups {
            var start = 0
            while start < group.entries.count {
                let end = min(start + Self.maximumPerCall, group.entries.count)
                calls.append(Call(entries: Array(group.entries[start..<end])))
                start = end
            }
        }
        self.groups.removeAll(keepingCapacity: true)
        self.groupIndex.removeAll(keepingCapacity: true)
        return calls
    }

    /// Each decision of `entries` in the script's reply `{allowed₁, credit₁, allowed₂, ...}`,
    /// or nil when the reply is not exactly that: two integers per decision, allowed 0 or 1,
    /// credit within the bucket's capacity. A reply that fails any check is refused whole,
    /// as nothing says which part of it to trust.
    static func decisions(from reply: RESPValue, for entries: [Entry]) -> [RateLimitDecision]? {
        guard case .array(let values) = reply, values.count == entries.count * 2 else { return nil }
        var decisions: [RateLimitDecision] = []
        decisions.reserveCapacity(entries.count)
        for (index, entry) in entries.enumerated() {
            guard case .integer(let allowed) = values[2 * index], allowed == 0 || allowed == 1,
                case .integer(let credit) = values[2 * index + 1], credit >= 0,
                credit <= entry.shape.burst * entry.shape.periodSeconds * Self.ticksPerSecond
            else { return nil }
            decisions.append(
                RateLimitDecision(
                    shape: entry.shape,
                    allowed: allowed == 1,
                    credit: credit,
                    ticksPerSecond: Self.ticksPerSecond
                )
            )
        }
        return decisions
    }

    // MARK: the script

    /// KEYS[i]: the bucket of decision i. ARGV[4i-3 ... 4i]: take (1) or peek (0), rate
    /// (units per µs), units per token (the period in µs), burst. Returns
    /// `{allowed₁, credit₁, ...}`: for a take, the credit after it; for a peek, what a take
    /// would leave.
    ///
    /// The decisions are applied in order, each against the bucket as the ones before it left
    /// it, exactly as if each had been its own script run at the same Redis `TIME`: a bucket
    /// is read once (`GET`) and written once at the end (`SET ... PX`, or `DEL` when full),
    /// however many decisions of the batch it serves.
    static let script = """
        if redis.replicate_commands then redis.replicate_commands() end
        local time = redis.call('TIME')
        local clock = tonumber(time[1]) * 1000000 + tonumber(time[2])
        local buckets = {}
        local written = {}
        local order = {}
        local reply = {}
        for i = 1, #KEYS do
          local key = KEYS[i]
          local take = ARGV[4 * i - 3] == '1'
          local rate = tonumber(ARGV[4 * i - 2])
          local per_token = tonumber(ARGV[4 * i - 1])
          local capacity = tonumber(ARGV[4 * i]) * per_token
          local bucket = buckets[key]
          if bucket == nil then
            bucket = false
            local stored = redis.call('GET', key)
            if stored then
              local c, t = string.match(stored, '^(%d+) (%d+)$')
              if c then bucket = {tonumber(c), tonumber(t)} end
            end
          end
          local now = clock
          local credit = capacity
          if bucket then
            credit = bucket[1]
            local last = bucket[2]
            if now > last then
              local gained = (now - last) * rate
              if gained >= capacity - credit then credit = capacity else credit = credit + gained end
            else
              now = last
            end
            if credit > capacity then credit = capacity end
          end
          local allowed = 0
          if credit >= per_token then allowed = 1 end
          reply[2 * i - 1] = allowed
          if take then
            if allowed == 1 then credit = credit - per_token end
            local missing = capacity - credit
            if missing > 0 then
              bucket = {credit, now, math.floor(missing / rate / 1000) + 2}
            else
              bucket = false
            end
            if not written[key] then
              written[key] = true
              order[#order + 1] = key
            end
            reply[2 * i] = credit
          elseif allowed == 1 then
            reply[2 * i] = credit - per_token
          else
            reply[2 * i] = credit
          end
          buckets[key] = bucket
        end
        for _, key in ipairs(order) do
          local bucket = buckets[key]
          if bucket then
            redis.call('SET', key, string.format('%d %d', bucket[1], bucket[2]), 'PX', string.format('%d', bucket[3]))
          else
            redis.call('DEL', key)
          end
        end
        return reply
        """
    // Notes on the script:
    // - The bucket value `<credit> <µs stamp>` is the one of the script that decided one
    //   request per call, so gateways of both kinds share buckets during a rolling upgrade.
    // - replicate_commands: TIME before a write needs effects replication, the default
    //   since Redis 5 and the only mode in 7 (where the call is a no-op); kept for 3.2-4.
    // - `now = last` when TIME went backwards (a failover to a server behind): no refill,
    //   and the later stamp is kept so the interval is not credited twice.
    // - The expiry errs late (+2 ms, rounded down then up): a bucket kept a little past
    //   full is still full (capped), whereas one dropped early would hand out tokens. The
    //   last take of a bucket in the call sets it, from that bucket's shape.
    // - A stored value that does not parse is treated as a full bucket.
    // - Arithmetic is in integers below 2⁵³ (at most 3.6·10¹⁵ units), exact in Lua's
    //   doubles; numbers are written with `%d`, as Lua's default conversion keeps only 14
    //   significant digits.
}
