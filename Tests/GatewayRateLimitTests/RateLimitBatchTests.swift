import GatewayConfig
import GatewayCore
import GatewayRedis
import GatewayRedisTestSupport
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import GatewayRateLimit

// The decisions of one loop tick in one script call: the batch's bookkeeping and reply
// parsing on their own, then the limiter against a real redis-server (single and one-node
// cluster) and against a fake server that answers malformed replies.

private let batchPrefix = "b:"
private let quiet = Logger(label: "batch-test", factory: { _ in SwiftLogNoOpLogHandler() })

private func entry(_ id: UInt64, _ key: String, take: Bool = true, burst: Int = 3) -> RateLimitBatch.Entry {
    RateLimitBatch.Entry(
        id: id,
        key: key,
        shape: TokenBucket.Shape(policy: "p", rate: 5, periodSeconds: 60, burst: burst),
        take: take
    )
}

@Suite struct RateLimitBatchUnitTests {
    @Test func onlyTheFirstDecisionOfATickSchedulesAFlush() {
        var batch = RateLimitBatch()
        let first = batch.append(entry(1, "a"), destination: 0)
        let second = batch.append(entry(2, "b"), destination: 0)
        let third = batch.append(entry(3, "c"), destination: 7)
        #expect(first && !second && !third)
        let calls = batch.drain()
        #expect(calls.map(\.keys) == [["a", "b"], ["c"]])
        #expect(batch.isEmpty)
        let afterDrain = batch.append(entry(4, "d"), destination: 0)
        #expect(afterDrain)
    }

    @Test func drainGroupsByDestinationInArrivalOrderAndBoundsEachCall() {
        var batch = RateLimitBatch()
        var id: UInt64 = 0
        // 150 decisions for destination 5, interleaved with 3 for destination 9.
        for index in 0..<150 {
            id += 1
            _ = batch.append(entry(id, "k\(index)"), destination: 5)
            if index % 50 == 0 {
                id += 1
                _ = batch.append(entry(id, "other\(index)"), destination: 9)
            }
        }
        let calls = batch.drain()
        #expect(calls.map(\.entries.count) == [64, 64, 22, 3])
        #expect(calls.prefix(3).flatMap(\.keys) == (0..<150).map { "k\($0)" })
        #expect(calls[3].keys == ["other0", "other50", "other100"])
        // Every id once, each call's ids ascending (the order the decisions were asked).
        let ids = calls.flatMap { $0.entries.map(\.id) }
        #expect(Set(ids).count == 153)
        for call in calls { #expect(call.entries.map(\.id) == call.entries.map(\.id).sorted()) }
        let again = batch.drain()
        #expect(again.isEmpty)
    }

    @Test func argumentsAreFourPerDecision() {
        let call = RateLimitBatch.Call(entries: [
            entry(1, "a"),
            RateLimitBatch.Entry(
                id: 2,
                key: "b",
                shape: TokenBucket.Shape(policy: "q", rate: 2, periodSeconds: 1, burst: 9),
                take: false
            ),
        ])
        #expect(call.keys == ["a", "b"])
        #expect(call.arguments == ["1", "5", "60000000", "3", "0", "2", "1000000", "9"])
    }

    @Test func repliesAreParsedStrictlyAndRefusedWhole() {
        let entries = [entry(1, "a"), entry(2, "b")]
        let capacity: Int64 = 3 * 60_000_000
        let good = RESPValue.array([.integer(1), .integer(120_000_000), .integer(0), .integer(0)])
        let decisions = RateLimitBatch.decisions(from: good, for: entries)
        #expect(decisions?.map(\.allowed) == [true, false])
        #expect(decisions?.map(\.remaining) == [2, 0])
        #expect(decisions?[0].resetSeconds == 12)
        #expect(decisions?[1].retryAfterSeconds == 12)
        let hostile: [RESPValue] = [
            .simpleString("OK"),
            .null,
            .error("ERR"),
            .array([]),
            .array([.integer(1), .integer(0)]),  // one pair for two decisions
            .array([.integer(1), .integer(0), .integer(1), .integer(0), .integer(1), .integer(0)]),
            .array([.integer(1), .integer(0), .integer(2), .integer(0)]),  // allowed 2
            .array([.integer(1), .integer(0), .integer(-1), .integer(0)]),
            .array([.integer(1), .integer(-5), .integer(1), .integer(0)]),  // negative credit
            .array([.integer(1), .integer(capacity + 1), .integer(1), .integer(0)]),  // above the capacity
            .array([.bulk("1"), .integer(0), .integer(1), .integer(0)]),
            .array([.integer(1), .bulk("0"), .integer(1), .integer(0)]),
            .array([.array([.integer(1), .integer(0)]), .array([.integer(1), .integer(0)])]),
            .array([.integer(1), .integer(0), .integer(1), .null]),
        ]
        for reply in hostile {
            #expect(RateLimitBatch.decisions(from: reply, for: entries) == nil, "\(reply)")
        }
        #expect(
            RateLimitBatch.decisions(
                from: .array([.integer(1), .integer(capacity), .integer(0), .integer(0)]),
                for: entries
            ) != nil
        )
    }
}

// MARK: against redis-server

/// A limiter with its own connection (cluster mode when `settings` say so) on `loop`.
private func batchLimiter(
    _ settings: RedisSettings,
    prefix: String = batchPrefix,
    timeout: TimeAmount = .seconds(2),
    on loop: any EventLoop
) async throws -> NIOLoopBound<RedisRateLimiter> {
    try await loop.submit {
        let client = RedisClient(eventLoop: loop, settings: settings, connector: posixRedisConnector, clock: .system)
        return NIOLoopBound(
            RedisRateLimiter(client: client, keyPrefix: prefix, timeout: timeout),
            eventLoop: loop
        )
    }.get()
}

/// Asks every `(shape, key, take)` within one task on the limiter's loop: one tick.
private func inOneTick(
    _ limiter: NIOLoopBound<RedisRateLimiter>,
    _ asks: [(TokenBucket.Shape, String, Bool)]
) async throws -> [RateLimitDecision] {
    let loop = limiter.eventLoop
    let futures = try await loop.submit {
        asks.map { shape, key, take in
            take ? limiter.value.decide(shape, key: key) : limiter.value.peek(shape, key: key)
        }
    }.get()
    return try await EventLoopFuture.whenAllSucceed(futures, on: loop).get()
}

/// The same asks one at a time, each waiting for the previous answer: one call each.
private func oneByOne(
    _ limiter: NIOLoopBound<RedisRateLimiter>,
    _ asks: [(TokenBucket.Shape, String, Bool)]
) async throws -> [RateLimitDecision] {
    var decisions: [RateLimitDecision] = []
    for (shape, key, take) in asks {
        decisions.append(try await inOneTick(limiter, [(shape, key, take)])[0])
    }
    return decisions
}

/// How many times the server ran `name` (`INFO commandstats`).
private func calls(_ raw: LoopClient, _ name: String) async throws -> Int {
    guard case .bulkString(let bytes) = try await raw.send(["INFO", "commandstats"]) else {
        throw RedisTestFailure("INFO did not answer a bulk string")
    }
    for line in String(decoding: bytes, as: UTF8.self).split(separator: "\r\n")
    where line.hasPrefix("cmdstat_\(name):calls=") {
        return Int(line.dropFirst("cmdstat_\(name):calls=".count).prefix { $0.isNumber }) ?? 0
    }
    return 0
}

/// Redis's `TIME` in microseconds.
private func redisNow(_ raw: LoopClient) async throws -> Int64 {
    guard case .array(let parts) = try await raw.send(["TIME"]), parts.count == 2,
        case .bulkString(let seconds) = parts[0], case .bulkString(let micros) = parts[1],
        let s = Int64(String(decoding: seconds, as: UTF8.self)), let us = Int64(String(decoding: micros, as: UTF8.self))
    else { throw RedisTestFailure("TIME did not answer two integers") }
    return s * 1_000_000 + us
}

/// Asks one by one (as `oneByOne`) and checks each answer is the batch's: the same
/// allowed, remaining, limit and window, and times that differ only by the seconds Redis's
/// clock moved while the single calls ran (the batch decided at one `TIME`; the policies
/// here refill far slower than that, so no token comes back meanwhile).
private func expectSameAsOneByOne(
    _ batched: [RateLimitDecision],
    _ limiter: NIOLoopBound<RedisRateLimiter>,
    _ raw: LoopClient,
    _ asks: [(TokenBucket.Shape, String, Bool)],
    sourceLocation: SourceLocation = #_sourceLocation
) async throws {
    let start = try await redisNow(raw)
    let single = try await oneByOne(limiter, asks)
    let elapsed = Int((try await redisNow(raw) - start + 999_999) / 1_000_000)
    #expect(single.count == batched.count, sourceLocation: sourceLocation)
    for (one, batch) in zip(single, batched) {
        #expect(
            one.policy == batch.policy && one.allowed == batch.allowed && one.remaining == batch.remaining
                && one.limit == batch.limit && one.windowSeconds == batch.windowSeconds,
            "\(one) vs \(batch)",
            sourceLocation: sourceLocation
        )
        #expect(
            (batch.resetSeconds - elapsed...batch.resetSeconds).contains(one.resetSeconds)
                && (max(batch.retryAfterSeconds - elapsed, batch.allowed ? 0 : 1)...batch.retryAfterSeconds).contains(
                    one.retryAfterSeconds
                ),
            "\(one) vs \(batch), \(elapsed) s apart",
            sourceLocation: sourceLocation
        )
    }
}

private func sentCalls(_ limiter: NIOLoopBound<RedisRateLimiter>) async throws -> [Int] {
    try await limiter.eventLoop.submit { limiter.value.callsByDecisions }.get()
}

@Suite(.serialized, .timeLimit(.minutes(2)))
struct RateLimitBatchRedisTests {
    @Test func aTicksDecisionsAreOneEvalshaAndAnswerAsOneByOne() async throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        try await withGroup(loops: 1) { group in
            let loop = group.next()
            let limiter = try await batchLimiter(redisSettings(server), on: loop)
            let raw = LoopClient(redisSettings(server), on: loop)
            let shape = TokenBucket.Shape(policy: "burst", rate: 1, periodSeconds: 3600, burst: 20)
            let before = try await calls(raw, "evalsha")
            // 30 decisions on one bucket in one tick: a burst that crosses the limit.
            let batched = try await inOneTick(limiter, Array(repeating: (shape, "alice", true), count: 30))
            #expect(try await calls(raw, "evalsha") == before + 1)
            #expect(try await sentCalls(limiter)[30] == 1)
            // The same 30 one at a time, on a bucket of their own: 30 calls, same answers.
            try await expectSameAsOneByOne(batched, limiter, raw, Array(repeating: (shape, "bob", true), count: 30))
            #expect(try await calls(raw, "evalsha") == before + 31)
            #expect(try await sentCalls(limiter)[1] == 30)
            #expect(batched.filter(\.allowed).map(\.remaining) == Array((0..<20).reversed()))
            #expect(batched.prefix(20).allSatisfy { $0.allowed } && batched.dropFirst(20).allSatisfy { !$0.allowed })
            #expect(batched.map(\.resetSeconds) == (1...30).map { min($0, 20) * 3600 })
            #expect(batched.dropFirst(20).allSatisfy { $0.retryAfterSeconds == 3600 && $0.remaining == 0 })
            // The bucket was written once, at the end, with what the last decision left.
            guard case .bulkString(let value) = try await raw.send(["GET", "b:rl:burst:k:alice"]) else {
                Issue.record("no bucket stored")
                return
            }
            #expect(String(decoding: value, as: UTF8.self).hasPrefix("0 "))
            await raw.close()
        }
    }

    @Test func severalKeysAndPoliciesInOneCallEachGetTheirOwnAnswer() async throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        try await withGroup(loops: 1) { group in
            let loop = group.next()
            let limiter = try await batchLimiter(redisSettings(server), on: loop)
            let raw = LoopClient(redisSettings(server), on: loop)
            let route = TokenBucket.Shape(policy: "route", rate: 1, periodSeconds: 3600, burst: 3)
            let tier = TokenBucket.Shape(policy: "tier", rate: 2, periodSeconds: 3600, burst: 2)
            let wide = TokenBucket.Shape(policy: "wide", rate: 1000, periodSeconds: 1, burst: 1000)
            // Route and tier per request, as RateLimitGate asks them, for two principals,
            // with explain's peeks in between.
            func asks(_ a: String, _ b: String) -> [(TokenBucket.Shape, String, Bool)] {
                [
                    (route, a, true), (tier, a, true), (route, b, true), (tier, a, false), (tier, a, true),
                    (route, a, true), (tier, a, true), (wide, b, true), (route, a, false), (route, a, true),
                    (route, a, true), (tier, b, true), (route, a, false),
                ]
            }
            let before = try await calls(raw, "evalsha")
            let batched = try await inOneTick(limiter, asks("alice", "bob"))
            #expect(try await calls(raw, "evalsha") == before + 1)
            try await expectSameAsOneByOne(batched, limiter, raw, asks("carol", "dave"))
            #expect(
                batched.map(\.allowed) == [
                    true, true, true, true, true, true, false, true, true, true, false, true, false,
                ]
            )
            #expect(batched.map(\.policy) == asks("x", "y").map { $0.0.policy })
            #expect(batched[1].remaining == 1 && batched[3].remaining == 0 && batched[6].remaining == 0)
            #expect(batched[7].remaining == 999 && batched[7].windowSeconds == 1)
            #expect(batched[11].remaining == 1)
            // Peeks wrote nothing of their own: alice's route bucket holds what her three
            // takes left, and no bucket exists for a key only peeked at.
            _ = try await inOneTick(limiter, [(route, "erin", false), (tier, "erin", false)])
            #expect(try await raw.send(["EXISTS", "b:rl:route:k:erin", "b:rl:tier:k:erin"]) == .integer(0))
            await raw.close()
        }
    }

    @Test func moreThanABatchMakesSeveralCallsAndStaysExact() async throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        try await withGroup(loops: 1) { group in
            let loop = group.next()
            let limiter = try await batchLimiter(redisSettings(server), on: loop)
            let raw = LoopClient(redisSettings(server), on: loop)
            let shape = TokenBucket.Shape(policy: "many", rate: 1, periodSeconds: 3600, burst: 100)
            let before = try await calls(raw, "evalsha")
            let decisions = try await inOneTick(limiter, Array(repeating: (shape, "k", true), count: 150))
            #expect(try await calls(raw, "evalsha") == before + 3)
            #expect(try await sentCalls(limiter)[64] == 2)
            #expect(try await sentCalls(limiter)[22] == 1)
            #expect(decisions.prefix(100).allSatisfy { $0.allowed })
            #expect(decisions.dropFirst(100).allSatisfy { !$0.allowed })
            #expect(decisions.prefix(100).map(\.remaining) == Array((0..<100).reversed()))
            await raw.close()
        }
    }

    @Test func afterScriptFlushTheBatchIsSentAgainAsOneCall() async throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        try await withGroup(loops: 1) { group in
            let loop = group.next()
            let limiter = try await batchLimiter(redisSettings(server), on: loop)
            let raw = LoopClient(redisSettings(server), on: loop)
            let shape = TokenBucket.Shape(policy: "flushed", rate: 1, periodSeconds: 3600, burst: 5)
            #expect(try await inOneTick(limiter, [(shape, "k", true)])[0].remaining == 4)
            #expect(try await raw.send(["SCRIPT", "FLUSH"]) == .simpleString("OK"))
            let sentBefore = try await limiter.eventLoop.submit { limiter.value.client.commandsSent }.get()
            let loadsBefore = try await calls(raw, "script|load")
            let decisions = try await inOneTick(limiter, Array(repeating: (shape, "k", true), count: 6))
            // EVALSHA (NOSCRIPT), SCRIPT LOAD, EVALSHA: the whole batch once more, once.
            let sent = try await limiter.eventLoop.submit { limiter.value.client.commandsSent }.get()
            #expect(sent - sentBefore == 3)
            #expect(try await calls(raw, "script|load") == loadsBefore + 1)
            #expect(decisions.map(\.allowed) == [true, true, true, true, false, false])
            #expect(decisions.prefix(4).map(\.remaining) == [3, 2, 1, 0])
            await raw.close()
        }
    }

    @Test func eachDecisionOfACallKeepsItsOwnDeadline() async throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        try await withGroup(loops: 1) { group in
            let loop = group.next()
            // The client would wait 5 s; the limiter gives Redis 100 ms per decision.
            let limiter = try await batchLimiter(
                redisSettings(server, commandTimeout: .seconds(5)),
                timeout: .milliseconds(100),
                on: loop
            )
            let raw = LoopClient(redisSettings(server), on: loop)
            let shape = TokenBucket.Shape(policy: "paused", rate: 1, periodSeconds: 3600, burst: 10)
            #expect(try await inOneTick(limiter, [(shape, "k", true)])[0].remaining == 9)
            #expect(try await raw.send(["CLIENT", "PAUSE", "1000", "ALL"]) == .simpleString("OK"))
            let futures = try await loop.submit {
                (0..<5).map { _ in limiter.value.decide(shape, key: "k") }
            }.get()
            for future in futures {
                await #expect(throws: RateLimitStoreError.timeout) { try await future.get() }
            }
            #expect(try await loop.submit { limiter.value.waitingCount }.get() == 0)
            #expect(try await sentCalls(limiter)[5] == 1)
            // Once the pause is over the late reply is dropped; the call still took its 5
            // tokens in Redis, and the next decision is answered as usual.
            let patient = LoopClient(redisSettings(server, commandTimeout: .seconds(5)), on: loop)
            #expect(try await patient.send(["PING"]) == .simpleString("PONG"))
            await patient.close()
            let next = try await inOneTick(limiter, [(shape, "k", true)])[0]
            #expect(next.allowed && next.remaining == 3)
            #expect(try await loop.submit { limiter.value.waitingCount }.get() == 0)
            await raw.close()
        }
    }

    @Test func onAClusterEachSlotGetsOneCall() async throws {
        let server = try await startSingleNodeCluster()
        defer { server.stop() }
        try await withGroup(loops: 1) { group in
            let loop = group.next()
            let raw = LoopClient(redisSettings(server), on: loop)
            let spread = try await batchLimiter(redisClusterSettings(server), on: loop)
            let shape = TokenBucket.Shape(policy: "slots", rate: 1, periodSeconds: 3600, burst: 2)
            let other = TokenBucket.Shape(policy: "other", rate: 1, periodSeconds: 3600, burst: 1)
            let principals = ["alice", "bob", "carol", "dave", "erin"]
            var asks: [(TokenBucket.Shape, String, Bool)] = []
            for principal in principals {
                asks += [(shape, principal, true), (other, principal, true), (shape, principal, true)]
            }
            asks += asks.prefix(6)  // the same buckets again, later in the tick
            let slots = Set(
                asks.map {
                    ClusterSlot.of(RedisRateLimiter.redisKey(prefix: batchPrefix, policy: $0.0.policy, key: $0.1))
                }
            )
            #expect(slots.count > 1)
            let before = try await calls(raw, "evalsha")
            let decisions = try await inOneTick(spread, asks)
            // One call per slot, none refused for keys in different slots.
            #expect(try await calls(raw, "evalsha") == before + slots.count)
            #expect(try await calls(raw, "evalsha") < before + asks.count)
            #expect(decisions.prefix(15).map(\.allowed) == Array(repeating: true, count: 15))
            #expect(decisions.dropFirst(15).map(\.allowed) == Array(repeating: false, count: 6))
            #expect(decisions.prefix(3).map(\.remaining) == [1, 0, 0])

            // A prefix with a hash tag puts every bucket in its slot: one call for the tick.
            let tagged = try await batchLimiter(redisClusterSettings(server), prefix: "b{t}:", on: loop)
            let beforeTagged = try await calls(raw, "evalsha")
            let taggedDecisions = try await inOneTick(tagged, asks)
            #expect(try await calls(raw, "evalsha") == beforeTagged + 1)
            #expect(taggedDecisions == decisions)
            await raw.close()
        }
    }
}

// MARK: against a server that answers what the test says

/// A RESP server on 127.0.0.1 that answers `SCRIPT LOAD` with a hash and `EVALSHA` with
/// whatever `reply` makes of the command's keys, anything else `+OK`.
/// Its handlers run on their channels' loops; the counter is atomic.
private final class ScriptedRedis: Sendable {
    let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    static func start(
        group: any EventLoopGroup,
        reply: @escaping @Sendable ([String]) -> String
    ) async throws
        -> ScriptedRedis
    {
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(reply: reply))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return ScriptedRedis(channel: server)
    }

    var settings: RedisSettings {
        var settings = RedisSettings(endpoint: .tcp(host: "127.0.0.1", port: self.channel.localAddress?.port ?? 0))
        settings.commandTimeout = .seconds(2)
        return settings
    }

    /// One connection. Its channel's loop only.
    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let reader = RESPReader()
        let reply: @Sendable ([String]) -> String

        init(reply: @escaping @Sendable ([String]) -> String) { self.reply = reply }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = Self.unwrapInboundIn(data)
            do {
                try self.reader.feed(Array(bytes.readableBytesView))
                while let value = try self.reader.next() {
                    guard case .array(let parts) = value else { continue }
                    let command = parts.map { part -> String in
                        if case .bulkString(let bytes) = part { return String(decoding: bytes, as: UTF8.self) }
                        return ""
                    }
                    let answer: String
                    switch command.first?.uppercased() {
                    case "SCRIPT": answer = "$40\r\n" + String(repeating: "a", count: 40) + "\r\n"
                    case "EVALSHA":
                        let count = Int(command[2]) ?? 0
                        answer = self.reply(Array(command[3..<(3 + count)]))
                    default: answer = "+OK\r\n"
                    }
                    context.write(Self.wrapOutboundOut(context.channel.allocator.buffer(string: answer)), promise: nil)
                }
                context.flush()
            } catch {
                context.close(promise: nil)
            }
        }
    }
}

/// Script calls the scripted server answered; any thread.
private final class Counter: Sendable {
    let value = Atomic<Int>(0)
}

@Suite(.serialized, .timeLimit(.minutes(1)))
struct RateLimitBatchHostileReplyTests {
    @Test func aMalformedReplyFailsEveryDecisionOfItsCallAndNothingElse() async throws {
        try await withGroup(loops: 1) { group in
            let loop = group.next()
            let counted = Counter()
            let server = try await ScriptedRedis.start(group: group) { keys in
                counted.value.add(1, ordering: .relaxed)
                let first = keys.first ?? ""
                if first.hasSuffix(":short") { return "*2\r\n:1\r\n:0\r\n" }
                if first.hasSuffix(":types") {
                    return "*\(keys.count * 2)\r\n" + String(repeating: "$1\r\n1\r\n$1\r\n0\r\n", count: keys.count)
                }
                if first.hasSuffix(":allowed") {
                    return "*\(keys.count * 2)\r\n" + String(repeating: ":7\r\n:0\r\n", count: keys.count)
                }
                if first.hasSuffix(":error") { return "-ERR something broke\r\n" }
                // Allowed, one token left of a 1-per-hour bucket of burst 2.
                return "*\(keys.count * 2)\r\n" + String(repeating: ":1\r\n:3600000000\r\n", count: keys.count)
            }
            defer { _ = server.channel.close() }
            let local = LocalRateLimiter(group: group, clock: .system)
            let limiter = try await loop.submit {
                let client = RedisClient(
                    eventLoop: loop,
                    settings: server.settings,
                    connector: posixRedisConnector,
                    clock: .system
                )
                let redis = RedisRateLimiter(client: client, keyPrefix: batchPrefix, timeout: .seconds(2))
                return NIOLoopBound(
                    RateLimiter(eventLoop: loop, local: local, redis: redis, logger: quiet),
                    eventLoop: loop
                )
            }.get()
            let fallback = RateLimitPolicy(name: "fb", rate: 1, per: .hour, burst: 2, onStoreUnavailable: .local)
            let strict = RateLimitPolicy(name: "strict", rate: 1, per: .hour, burst: 2, onStoreUnavailable: .deny)
            func tick(_ asks: [(RateLimitPolicy, String)]) async throws -> [RateLimitOutcome] {
                let futures = try await loop.submit {
                    asks.map { policy, key -> EventLoopFuture<RateLimitOutcome> in
                        switch limiter.value.decide(policy: policy, key: key) {
                        case .decided(let decision): return loop.makeSucceededFuture(.decided(decision))
                        case .pending(let future): return future
                        }
                    }
                }.get()
                return try await EventLoopFuture.whenAllSucceed(futures, on: loop).get()
            }
            let healthy = try await tick([(fallback, "ok"), (fallback, "ok")])
            #expect(
                healthy.allSatisfy {
                    if case .decided(let decision) = $0 { decision.allowed && decision.remaining == 1 } else { false }
                }
            )
            for hostile in ["short", "types", "allowed", "error"] {
                // Three decisions in one call: each falls back by its own policy.
                let outcomes = try await tick([(fallback, hostile), (strict, hostile), (fallback, hostile)])
                #expect(outcomes[1] == .storeUnavailable(policy: "strict"), "\(hostile)")
                #expect(
                    outcomes[0] != .storeUnavailable(policy: "fb") && outcomes[2] != .storeUnavailable(policy: "fb")
                )
                // Decided by the local bucket of `hostile` (burst 2): one token each.
                guard case .decided(let first) = outcomes[0], case .decided(let third) = outcomes[2] else {
                    Issue.record("\(hostile): not decided locally")
                    continue
                }
                #expect(first.allowed && third.allowed && [first.remaining, third.remaining].sorted() == [0, 1])
            }
            let counters = try await loop.submit {
                (limiter.value.redisDecisions, limiter.value.fallbackDecisions, limiter.value.deniedUnavailable)
            }.get()
            #expect(counters == (2, 8, 4))
            #expect(counted.value.load(ordering: .relaxed) == 5)
            // The connection and the limiter carry on.
            let after = try await tick([(fallback, "ok2")])
            #expect(
                after == [
                    .decided(
                        RateLimitDecision(
                            policy: "fb",
                            allowed: true,
                            limit: 2,
                            remaining: 1,
                            resetSeconds: 3600,
                            retryAfterSeconds: 0,
                            windowSeconds: 7200
                        )
                    )
                ]
            )
        }
    }
}
