import Foundation
import GatewayConfig
import GatewayRedis
import GatewayRedisTestSupport
import GatewayStore
import GatewayTestSupport
import NIOCore
import NIOPosix
import Testing

// One contract, two stores: every test runs against InMemoryCredentialStore and against
// RedisCredentialStore on a real redis-server (a missing redis-server fails, never skips).
// A few tests are about Redis only (corrupt stored data, an unreachable store).

enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case inMemory
    case redis
    /// The Redis store on a one-node Redis Cluster, with the cluster key layout: Redis
    /// refuses any command or script of the store whose keys cross slots.
    case redisCluster

    var testDescription: String { self.rawValue }

    /// The client settings for `server` (nil in memory).
    func settings(_ server: RedisServer) -> RedisSettings {
        self == .redisCluster ? redisClusterSettings(server) : redisSettings(server)
    }

    /// The stores' key prefix: `dbgw:`, with the hash tag on a cluster.
    var keyPrefix: String { self == .redisCluster ? "dbgw:{gw}:" : "dbgw:" }
}

/// The prefix of the Redis-only tests (on a plain redis-server).
private let keyPrefix = "dbgw:"

/// A store under test, a second store over the same data (another loop's store in
/// production), and what it takes to watch revocations. Every store call runs on the loop.
final class StoreHarness: @unchecked Sendable {
    let kind: StoreKind
    let eventLoop: any EventLoop
    let server: RedisServer?
    /// The Redis clients under `store` and `secondStore` (nil in memory).
    let redis: LoopClient?
    private let secondRedis: LoopClient?
    private let store: any CredentialStore
    private let secondStore: any CredentialStore
    private let memoryRevocations = LockedList<String>()
    private let pushes = LockedList<RESPValue>()
    private var subscriber: (any Channel)?

    init(kind: StoreKind, eventLoop: any EventLoop, server: RedisServer?) {
        self.kind = kind
        self.eventLoop = eventLoop
        self.server = server
        switch kind {
        case .inMemory:
            let revocations = self.memoryRevocations
            let data = InMemoryCredentialData(onRevoke: { revocations.append($0) })
            self.store = InMemoryCredentialStore(eventLoop: eventLoop, data: data)
            self.secondStore = InMemoryCredentialStore(eventLoop: eventLoop, data: data)
            self.redis = nil
            self.secondRedis = nil
        case .redis, .redisCluster:
            let server = server!
            let first = LoopClient(kind.settings(server), on: eventLoop)
            let second = LoopClient(kind.settings(server), on: eventLoop)
            #expect(first.client.settings.storeKeyPrefix == kind.keyPrefix)
            self.store = RedisCredentialStore(client: first.client, settings: first.client.settings)
            self.secondStore = RedisCredentialStore(client: second.client, settings: second.client.settings)
            self.redis = first
            self.secondRedis = second
        }
    }

    func run<T: Sendable>(
        second: Bool = false,
        _ body: @escaping @Sendable (any CredentialStore) -> EventLoopFuture<T>
    ) async throws -> T {
        try await self.eventLoop.flatSubmit { body(second ? self.secondStore : self.store) }.get()
    }

    /// Starts listening for revocations: for Redis a raw subscriber connection (a
    /// `RedisChannelHandler` in subscriber mode) on the events channel, with `SSUBSCRIBE` on
    /// a cluster (where the stores publish with `SPUBLISH`) unless `sharded` says otherwise.
    func watchRevocations(sharded: Bool? = nil) async throws {
        guard self.kind != .inMemory, let server = self.server else { return }
        let pushes = self.pushes
        let channel = try await ClientBootstrap(group: self.eventLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RedisChannelHandler(onPush: { pushes.append($0) }))
                }
            }
            .connect(host: "127.0.0.1", port: server.port).get()
        self.subscriber = channel
        let events = RedisCredentialStore.eventsChannel(keyPrefix: self.kind.keyPrefix)
        let subscribe = sharded ?? (self.kind == .redisCluster) ? "SSUBSCRIBE" : "SUBSCRIBE"
        let confirmation = try await channel.eventLoop.flatSubmit {
            let promise = channel.eventLoop.makePromise(of: RESPValue.self)
            let bytes = channel.allocator.buffer(bytes: RESPCommand.encode([subscribe, events]))
            channel.writeAndFlush(RedisRequest(bytes: bytes, promise: promise), promise: nil)
            return promise.futureResult
        }.get()
        #expect(confirmation == .array([.bulk(subscribe.lowercased()), .bulk(events), .integer(1)]))
    }

    /// What was announced so far: hashes given to `onRevoke` in memory; `<channel> <message>`
    /// of each pub/sub message for Redis.
    var revocationEvents: [String] {
        switch self.kind {
        case .inMemory:
            return self.memoryRevocations.values
        case .redis, .redisCluster:
            return self.pushes.values.map { push in
                guard case .array(let parts) = push, parts.count == 3,
                    case .bulkString(let kind) = parts[0], case .bulkString(let channel) = parts[1],
                    case .bulkString(let payload) = parts[2]
                else { return "unexpected push \(push)" }
                return "\(String(decoding: kind, as: UTF8.self)) \(String(decoding: channel, as: UTF8.self)) "
                    + String(decoding: payload, as: UTF8.self)
            }
        }
    }

    func expectedRevocationEvent(hash: String) -> String {
        switch self.kind {
        case .inMemory: return hash
        case .redis: return "message \(self.kind.keyPrefix)events revoke apikey \(hash)"
        case .redisCluster: return "smessage \(self.kind.keyPrefix)events revoke apikey \(hash)"
        }
    }

    func shutdown() async {
        if let subscriber = self.subscriber {
            try? await subscriber.close()
        }
        await expectSpreadAPIKeyLayout(self.kind, self.redis)
        await self.redis?.close()
        await self.secondRedis?.close()
    }
}

/// On a cluster, the credential store's layout: the records and last uses spread
/// (`dbgw:apikey:{<hash>}`, `dbgw:apikey-used:{<id>}`, each in its own tag's slot); every
/// other key the test made the store write is in the slot of the stores' tag (scripts build
/// some names from the prefix, which no client-side check sees); and every record is named
/// by an id pointer (a refused creation deletes the record it claimed).
func expectSpreadAPIKeyLayout(_ kind: StoreKind, _ redis: LoopClient?) async {
    guard kind == .redisCluster, let redis else { return }
    do {
        let names = try await allKeyNames(redis)
        let records = Set(names.filter { $0.hasPrefix("dbgw:apikey:{") && $0.hasSuffix("}") })
        let uses = names.filter { $0.hasPrefix("dbgw:apikey-used:{") && $0.hasSuffix("}") }
        let tagged = names.filter { !records.contains($0) && !uses.contains($0) }
        let tagSlot = ClusterSlot.of(kind.keyPrefix)
        let strays = tagged.filter { !$0.hasPrefix(kind.keyPrefix) || ClusterSlot.of($0) != tagSlot }
        #expect(strays.isEmpty, "keys outside the layout: \(strays)")
        var pointed: Set<String> = []
        for pointer in tagged where pointer.hasPrefix("\(kind.keyPrefix)apikey-id:") {
            if case .bulkString(let hash) = try await redis.send(["GET", pointer]) {
                pointed.insert("dbgw:apikey:{\(String(decoding: hash, as: UTF8.self))}")
            }
        }
        #expect(records == pointed, "records no id points to: \(records.subtracting(pointed).sorted())")
    } catch {
        Issue.record("the layout could not be read: \(error)")
    }
}

/// Runs `body` against a fresh credential store of `kind`.
func withStore(_ kind: StoreKind, _ body: (StoreHarness) async throws -> Void) async throws {
    try await withContractHarness(kind, body)
}

/// On a cluster, every key the test made the store write (scripts build some of their key
/// names from the prefix, which no client-side check sees) is in the slot of the stores' tag.
func expectEveryKeyInTheTagSlot(_ kind: StoreKind, _ redis: LoopClient?) async {
    guard kind == .redisCluster, let redis else { return }
    let slot = String(ClusterSlot.of(kind.keyPrefix))
    // The two counts are read one after the other: a key with a short TTL that Redis expires
    // in between makes them differ once, a key outside the slot on every read.
    var all: RESPValue?
    var inSlot: RESPValue?
    for _ in 0..<5 {
        all = try? await redis.send(["DBSIZE"])
        inSlot = try? await redis.send(["CLUSTER", "COUNTKEYSINSLOT", slot])
        if all != nil, all == inSlot { break }
        try? await Task.sleep(for: .milliseconds(50))
    }
    #expect(
        all != nil && all == inSlot,
        "keys: \(String(describing: all)), in slot \(slot): \(String(describing: inSlot))"
    )
}

/// A store under contract test: built over memory or a real redis-server, shut down after.
protocol ContractHarness {
    init(kind: StoreKind, eventLoop: any EventLoop, server: RedisServer?)
    func shutdown() async
}

extension StoreHarness: ContractHarness {}

/// Runs `body` against a fresh harness of `kind`; the redis-server and the event loop are
/// stopped afterwards, also on failure.
func withContractHarness<Harness: ContractHarness>(
    _ kind: StoreKind,
    _ body: (Harness) async throws -> Void
) async throws {
    let server: RedisServer?
    switch kind {
    case .inMemory: server = nil
    case .redis: server = try RedisServer.start()
    case .redisCluster: server = try await startSingleNodeCluster()
    }
    defer { server?.stop() }
    try await withEventLoop { loop async throws in
        let harness = Harness(kind: kind, eventLoop: loop, server: server)
        do {
            try await body(harness)
        } catch {
            await harness.shutdown()
            throw error
        }
        await harness.shutdown()
    }
}

/// A 64-digit lowercase hex hash, as the store keys records by.
private func keyHash(_ seed: Int) -> String {
    let hex = String(seed, radix: 16)
    return "a" + String(repeating: "0", count: 63 - hex.count) + hex
}

private func record(
    _ id: String,
    createdAt: Int64 = 1_700_000_000,
    name: String? = nil,
    owner: String = "alice@example.com"
) -> APIKeyRecord {
    APIKeyRecord(
        id: id,
        name: name ?? "key \(id)",
        scopes: ["databases:read", "reports:write"],
        owner: owner,
        createdAt: createdAt,
        expiresAt: createdAt + 86_400,
        last4: "x9Z\(id.suffix(1))",
        environment: "test"
    )
}

private func storeError(
    _ body: () async throws -> Void,
    sourceLocation: SourceLocation = #_sourceLocation
) async -> CredentialStoreError? {
    do {
        try await body()
        Issue.record("expected a CredentialStoreError, but the call succeeded", sourceLocation: sourceLocation)
        return nil
    } catch let error as CredentialStoreError {
        return error
    } catch {
        Issue.record("expected a CredentialStoreError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

private func isCorrupt(_ error: CredentialStoreError?) -> Bool {
    if case .corrupt = error { return true }
    return false
}

@Suite(.timeLimit(.minutes(1)))
struct CredentialStoreContractTests {
    @Test(arguments: StoreKind.allCases)
    func createThenGetByHash(kind: StoreKind) async throws {
        try await withStore(kind) { harness async throws in
            let key = record("k1")
            try await harness.run { $0.createAPIKey(key, hash: keyHash(1)) }
            #expect(try await harness.run { $0.apiKey(hash: keyHash(1)) } == key)
            #expect(try await harness.run { $0.apiKey(hash: keyHash(2)) } == nil)
            // Another loop's store over the same data sees it.
            #expect(try await harness.run(second: true) { $0.apiKey(hash: keyHash(1)) } == key)
            #expect(try await harness.run { $0.listAPIKeys() } == [key])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func emptyStoreListsNothing(kind: StoreKind) async throws {
        try await withStore(kind) { harness async throws in
            #expect(try await harness.run { $0.listAPIKeys() } == [])
            #expect(try await harness.run { $0.revokeAPIKey(id: "none") } == nil)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func duplicateIDConflicts(kind: StoreKind) async throws {
        try await withStore(kind) { harness async throws in
            let original = record("k1")
            try await harness.run { $0.createAPIKey(original, hash: keyHash(1)) }
            let error = await storeError {
                try await harness.run(second: true) {
                    $0.createAPIKey(record("k1", name: "impostor"), hash: keyHash(2))
                }
            }
            #expect(error == .conflict)
            #expect(try await harness.run { $0.apiKey(hash: keyHash(2)) } == nil)
            #expect(try await harness.run { $0.apiKey(hash: keyHash(1)) } == original)
            #expect(try await harness.run { $0.listAPIKeys() } == [original])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func duplicateHashConflicts(kind: StoreKind) async throws {
        try await withStore(kind) { harness async throws in
            let original = record("k1")
            try await harness.run { $0.createAPIKey(original, hash: keyHash(1)) }
            let error = await storeError {
                try await harness.run(second: true) { $0.createAPIKey(record("k2"), hash: keyHash(1)) }
            }
            #expect(error == .conflict)
            #expect(try await harness.run { $0.apiKey(hash: keyHash(1)) } == original)
            #expect(try await harness.run { $0.listAPIKeys() } == [original])
        }
    }

    /// A create refused for its hash leaves no trace of its id: the id is still free and
    /// revoking it finds nothing (it must not reach the other key that owns the hash).
    @Test(arguments: StoreKind.allCases)
    func refusedCreateLeavesNoTraceOfItsID(kind: StoreKind) async throws {
        try await withStore(kind) { harness async throws in
            let original = record("k1")
            try await harness.run { $0.createAPIKey(original, hash: keyHash(1)) }
            #expect(
                await storeError { try await harness.run { $0.createAPIKey(record("k2"), hash: keyHash(1)) } }
                    == .conflict
            )

            // A refused creation leaves nothing behind: revoking its id reaches nothing and
            // the id can be used again.
            let revoked = try await harness.run { $0.revokeAPIKey(id: "k2") }
            #expect(revoked == nil, "revoking the refused id reached \(String(describing: revoked))")
            #expect(try await harness.run { $0.apiKey(hash: keyHash(1)) }?.revoked == false)
            let retry = record("k2")
            try await harness.run { $0.createAPIKey(retry, hash: keyHash(2)) }
            #expect(try await harness.run { $0.apiKey(hash: keyHash(2)) } == retry)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func listIsNewestFirstWithLastUse(kind: StoreKind) async throws {
        try await withStore(kind) { harness async throws in
            let oldest = record("k1", createdAt: 100)
            let newestB = record("k2", createdAt: 300)
            let middle = record("k3", createdAt: 200)
            let newestA = record("k4", createdAt: 300)
            for (index, key) in [oldest, newestB, middle, newestA].enumerated() {
                try await harness.run { $0.createAPIKey(key, hash: keyHash(index + 1)) }
            }
            try await harness.run { $0.touchAPIKey(id: "k1", at: 5_000) }
            try await harness.run { $0.touchAPIKey(id: "k3", at: 6_000) }
            try await harness.run(second: true) { $0.touchAPIKey(id: "k3", at: 7_000) }

            let listed = try await harness.run { $0.listAPIKeys() }
            // Newest first; equal creation times by id, descending.
            #expect(listed.map(\.id) == ["k4", "k2", "k3", "k1"])
            var expected = [newestA, newestB, middle, oldest]
            expected[2].lastUsedAt = 7_000
            expected[3].lastUsedAt = 5_000
            #expect(listed == expected)
            #expect(try await harness.run(second: true) { $0.listAPIKeys() } == expected)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func revokeMarksTheRecordAndAnnouncesIt(kind: StoreKind) async throws {
        try await withStore(kind) { harness async throws in
            try await harness.watchRevocations()
            let target = record("k1")
            let bystander = record("k2")
            try await harness.run { $0.createAPIKey(target, hash: keyHash(1)) }
            try await harness.run { $0.createAPIKey(bystander, hash: keyHash(2)) }

            let revoked = try await harness.run { $0.revokeAPIKey(id: "k1") }
            var expected = target
            expected.revoked = true
            #expect(revoked == expected)
            #expect(try await harness.run(second: true) { $0.apiKey(hash: keyHash(1)) } == expected)
            #expect(try await harness.run { $0.apiKey(hash: keyHash(1)) }?.isUsable(at: target.createdAt) == false)
            #expect(try await harness.run { $0.apiKey(hash: keyHash(2)) } == bystander)
            #expect(
                try await harness.run { $0.listAPIKeys() }.map { "\($0.id) \($0.revoked)" } == ["k2 false", "k1 true"]
            )

            let announced = await eventually { harness.revocationEvents.count >= 1 }
            #expect(announced, "no revocation announced")
            #expect(harness.revocationEvents == [harness.expectedRevocationEvent(hash: keyHash(1))])

            // An unknown id: nil, and nothing announced.
            #expect(try await harness.run { $0.revokeAPIKey(id: "k404") } == nil)
            try await Task.sleep(for: .milliseconds(100))
            #expect(harness.revocationEvents.count == 1)
        }
    }

    // MARK: per-owner cap and pages

    @Test(arguments: StoreKind.allCases)
    func theCapHoldsUnderParallelCreationsOnTwoStores(kind: StoreKind) async throws {
        try await withStore(kind) { harness async throws in
            let outcomes = await withTaskGroup(of: CredentialStoreError?.self) { group in
                for index in 0..<12 {
                    group.addTask {
                        do {
                            try await harness.run(second: index % 2 == 1) {
                                $0.createAPIKey(
                                    record("k\(index)", createdAt: 1_700_000_000 + Int64(index)),
                                    hash: keyHash(index),
                                    maxPerOwner: 3
                                )
                            }
                            return nil
                        } catch {
                            return error as? CredentialStoreError ?? .corrupt("\(error)")
                        }
                    }
                }
                var all: [CredentialStoreError?] = []
                for await outcome in group { all.append(outcome) }
                return all
            }
            #expect(outcomes.filter { $0 == nil }.count == 3)
            #expect(outcomes.filter { $0 == .limitReached }.count == 9)
            let owned = try await harness.run { $0.listAPIKeys(owner: "alice@example.com", offset: 0, limit: 100) }
            #expect(owned.records.count == 3)
            // Another owner is not affected; revoking frees a place.
            try await harness.run { $0.createAPIKey(record("b1", owner: "bob"), hash: keyHash(100), maxPerOwner: 3) }
            _ = try await harness.run { $0.revokeAPIKey(id: owned.records[0].id) }
            try await harness.run { $0.createAPIKey(record("k99"), hash: keyHash(99), maxPerOwner: 3) }
            #expect(
                await storeError {
                    try await harness.run { $0.createAPIKey(record("k98"), hash: keyHash(98), maxPerOwner: 3) }
                } == .limitReached
            )
            // Without a cap (the operator) there is no limit.
            try await harness.run { $0.createAPIKey(record("k97"), hash: keyHash(97)) }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func pagesWalkTheIndexNewestFirst(kind: StoreKind) async throws {
        try await withStore(kind) { harness async throws in
            var alice: [APIKeyRecord] = []
            for index in 0..<5 {
                let key = record("a\(index)", createdAt: 1_700_000_000 + Int64(index))
                alice.append(key)
                try await harness.run { $0.createAPIKey(key, hash: keyHash(index)) }
            }
            let bob = record("b0", createdAt: 1_700_000_100, owner: "bob")
            try await harness.run { $0.createAPIKey(bob, hash: keyHash(50)) }
            try await harness.run { $0.touchAPIKey(id: "a4", at: 1_800_000_000) }

            var seen: [APIKeyRecord] = []
            var offset: Int? = 0
            while let start = offset {
                let page = try await harness.run(second: true) {
                    $0.listAPIKeys(owner: "alice@example.com", offset: start, limit: 2)
                }
                #expect(page.records.count <= 2)
                seen += page.records
                offset = page.nextOffset
            }
            #expect(seen.map(\.id) == ["a4", "a3", "a2", "a1", "a0"])
            #expect(seen.first?.lastUsedAt == 1_800_000_000)
            let everyone = try await harness.run { $0.listAPIKeys(owner: nil, offset: 0, limit: 100) }
            #expect(everyone.records.map(\.id) == ["b0", "a4", "a3", "a2", "a1", "a0"])
            #expect(everyone.nextOffset == nil)
            // A revoked key leaves its owner's list but stays in the full one.
            _ = try await harness.run { $0.revokeAPIKey(id: "a2") }
            #expect(
                try await harness.run { $0.listAPIKeys(owner: "alice@example.com", offset: 0, limit: 100) }.records.map(
                    \.id
                ) == ["a4", "a3", "a1", "a0"]
            )
            #expect(
                try await harness.run { $0.listAPIKeys(owner: nil, offset: 2, limit: 2) }.records.map(\.id) == [
                    "a3", "a2",
                ]
            )
            #expect(try await harness.run { $0.apiKey(id: "a2") }?.revoked == true)
            #expect(try await harness.run { $0.apiKey(id: "a4") }?.lastUsedAt == 1_800_000_000)
            #expect(try await harness.run { $0.apiKey(id: "zz") } == nil)
            #expect(
                try await harness.run { $0.listAPIKeys(owner: "nobody", offset: 0, limit: 10) }
                    == APIKeyPage(records: [], nextOffset: nil)
            )
        }
    }

    // MARK: key layout

    /// A single Redis keeps the names it always had; on a cluster the records and last uses
    /// spread over the slots under their own hash tags while the id pointers and indexes
    /// stay in the `{gw}` slot.
    @Test(arguments: [StoreKind.redis, .redisCluster])
    func keyNamesFollowTheLayout(kind: StoreKind) async throws {
        try await withStore(kind) { harness async throws in
            let redis = try #require(harness.redis)
            let count = 32
            for index in 0..<count {
                try await harness.run { $0.createAPIKey(record("k\(index)"), hash: keyHash(index)) }
            }
            try await harness.run { $0.touchAPIKey(id: "k1", at: 5_000) }
            let names = Set(try await allKeyNames(redis))
            let p = kind.keyPrefix
            var expected: Set<String> = [
                "\(p)apikeys", "\(p)apikeys-by-created", "\(p)apikeys-owner:alice@example.com", "\(p)apikeys-indexed",
            ]
            for index in 0..<count { expected.insert("\(p)apikey-id:k\(index)") }
            switch kind {
            case .redisCluster:
                for index in 0..<count { expected.insert("dbgw:apikey:{\(keyHash(index))}") }
                expected.insert("dbgw:apikey-used:{k1}")
                let recordSlots = Set((0..<count).map { ClusterSlot.of("dbgw:apikey:{\(keyHash($0))}") })
                #expect(recordSlots.count >= count - 2, "records in only \(recordSlots.count) slots")
                #expect(!recordSlots.contains(ClusterSlot.of(p)))
                let inTagSlot = try await redis.send(["CLUSTER", "COUNTKEYSINSLOT", String(ClusterSlot.of(p))])
                #expect(inTagSlot == .integer(Int64(count + 4)))
            default:
                for index in 0..<count { expected.insert("\(p)apikey:\(keyHash(index))") }
                expected.insert("\(p)apikey-used:k1")
            }
            #expect(
                names == expected,
                "unexpected: \(names.subtracting(expected)), missing: \(expected.subtracting(names))"
            )
            #expect(try await harness.run { $0.apiKey(id: "k1") }?.lastUsedAt == 5_000)
            #expect(try await harness.run { $0.listAPIKeys() }.count == count)
        }
    }

    // MARK: Redis only

    /// Keys written before the indexes existed are listed, counted against the cap and
    /// revocable: the first script that needs the indexes adds them.
    @Test(arguments: [StoreKind.redis])
    func keysFromBeforeTheIndexesAreIndexedOnFirstUse(kind: StoreKind) async throws {
        try await withStore(kind) { harness async throws in
            let redis = try #require(harness.redis)
            let legacy = [record("old1", createdAt: 1_600_000_000), record("old2", createdAt: 1_600_000_001)]
            for (index, key) in legacy.enumerated() {
                let json = String(decoding: try JSONEncoder().encode(key), as: UTF8.self)
                #expect(
                    try await redis.send(["SET", "\(keyPrefix)apikey-id:\(key.id)", keyHash(index)])
                        == .simpleString("OK")
                )
                #expect(
                    try await redis.send(["SET", "\(keyPrefix)apikey:\(keyHash(index))", json]) == .simpleString("OK")
                )
                #expect(try await redis.send(["SADD", "\(keyPrefix)apikeys", key.id]) == .integer(1))
            }
            // A revoked legacy key is listed for admins but does not count for its owner.
            _ = try await harness.run { $0.revokeAPIKey(id: "old1") }
            let page = try await harness.run { $0.listAPIKeys(owner: "alice@example.com", offset: 0, limit: 10) }
            #expect(page.records.map(\.id) == ["old2"])
            #expect(
                try await harness.run { $0.listAPIKeys(owner: nil, offset: 0, limit: 10) }.records.map(\.id) == [
                    "old2", "old1",
                ]
            )
            try await harness.run { $0.createAPIKey(record("new1"), hash: keyHash(10), maxPerOwner: 2) }
            #expect(
                await storeError {
                    try await harness.run { $0.createAPIKey(record("new2"), hash: keyHash(11), maxPerOwner: 2) }
                } == .limitReached
            )
        }
    }

    @Test(arguments: [StoreKind.redis])
    func keysAnOlderGatewayWritesAfterIndexingAreIndexedToo(kind: StoreKind) async throws {
        // A rolling upgrade: the new version has indexed everything, an old instance still
        // writes keys the old way. They must still count, list and be found for revocation.
        try await withStore(kind) { harness async throws in
            let redis = try #require(harness.redis)
            try await harness.run { $0.createAPIKey(record("new1"), hash: keyHash(10)) }
            let old = record("old1", createdAt: 1_600_000_000)
            let json = String(decoding: try JSONEncoder().encode(old), as: UTF8.self)
            #expect(
                try await redis.send(["SET", "\(keyPrefix)apikey-id:\(old.id)", keyHash(1)]) == .simpleString("OK")
            )
            #expect(try await redis.send(["SET", "\(keyPrefix)apikey:\(keyHash(1))", json]) == .simpleString("OK"))
            #expect(try await redis.send(["SADD", "\(keyPrefix)apikeys", old.id]) == .integer(1))
            let page = try await harness.run { $0.listAPIKeys(owner: "alice@example.com", offset: 0, limit: 10) }
            #expect(page.records.map(\.id) == ["new1", "old1"])
            #expect(
                await storeError {
                    try await harness.run { $0.createAPIKey(record("new2"), hash: keyHash(11), maxPerOwner: 2) }
                } == .limitReached
            )
            // Creations keep the marker in step: no pass over the id set for them.
            try await harness.run { $0.createAPIKey(record("new3"), hash: keyHash(12)) }
            #expect(try await redis.send(["GET", "\(keyPrefix)apikeys-indexed"]) == .bulkString(Array("3".utf8)))
        }
    }

    @Test(arguments: [StoreKind.redis])
    func aRedisOutOfMemoryIsAnOutageNotCorruption(kind: StoreKind) async throws {
        try await withStore(kind) { harness async throws in
            let redis = try #require(harness.redis)
            try await harness.run { $0.createAPIKey(record("k1"), hash: keyHash(1)) }
            #expect(try await redis.send(["CONFIG", "SET", "maxmemory-policy", "noeviction"]) == .simpleString("OK"))
            #expect(try await redis.send(["CONFIG", "SET", "maxmemory", "1"]) == .simpleString("OK"))
            #expect(
                await storeError { try await harness.run { $0.createAPIKey(record("k2"), hash: keyHash(2)) } }
                    == .unavailable
            )
            #expect(try await redis.send(["CONFIG", "SET", "maxmemory", "0"]) == .simpleString("OK"))
            try await harness.run { $0.createAPIKey(record("k2"), hash: keyHash(2)) }
        }
    }

    @Test(arguments: [StoreKind.redis])
    func corruptStoredRecordIsReportedAsCorrupt(kind: StoreKind) async throws {
        try await withStore(kind) { harness async throws in
            let redis = try #require(harness.redis)
            #expect(
                try await redis.send(["SET", "\(keyPrefix)apikey:\(keyHash(1))", "{\"id\": \"k1\", oops"])
                    == .simpleString("OK")
            )
            #expect(isCorrupt(await storeError { _ = try await harness.run { $0.apiKey(hash: keyHash(1)) } }))

            // Valid JSON of the wrong shape.
            #expect(
                try await redis.send(["SET", "\(keyPrefix)apikey:\(keyHash(2))", "{\"id\": 7}"]) == .simpleString("OK")
            )
            #expect(isCorrupt(await storeError { _ = try await harness.run { $0.apiKey(hash: keyHash(2)) } }))

            // Not a string at all (Redis answers WRONGTYPE).
            #expect(try await redis.send(["RPUSH", "\(keyPrefix)apikey:\(keyHash(3))", "x"]) == .integer(1))
            #expect(isCorrupt(await storeError { _ = try await harness.run { $0.apiKey(hash: keyHash(3)) } }))

            // Larger than any record the gateway writes.
            let huge = "{\"id\": \"" + String(repeating: "x", count: 70_000) + "\"}"
            #expect(try await redis.send(["SET", "\(keyPrefix)apikey:\(keyHash(4))", huge]) == .simpleString("OK"))
            #expect(isCorrupt(await storeError { _ = try await harness.run { $0.apiKey(hash: keyHash(4)) } }))

            // The store still works for good records.
            let good = record("k5")
            try await harness.run { $0.createAPIKey(good, hash: keyHash(5)) }
            #expect(try await harness.run { $0.apiKey(hash: keyHash(5)) } == good)
        }
    }

    @Test(arguments: [StoreKind.redis])
    func unreachableStoreIsUnavailable(kind: StoreKind) async throws {
        try await withStore(kind) { harness async throws in
            let key = record("k1")
            try await harness.run { $0.createAPIKey(key, hash: keyHash(1)) }
            harness.server?.kill()

            let start = ContinuousClock.now
            #expect(await storeError { _ = try await harness.run { $0.apiKey(hash: keyHash(1)) } } == .unavailable)
            #expect(
                await storeError { try await harness.run { $0.createAPIKey(record("k2"), hash: keyHash(2)) } }
                    == .unavailable
            )
            #expect(await storeError { _ = try await harness.run { $0.listAPIKeys() } } == .unavailable)
            #expect(await storeError { _ = try await harness.run { $0.revokeAPIKey(id: "k1") } } == .unavailable)
            #expect(await storeError { try await harness.run { $0.touchAPIKey(id: "k1", at: 1) } } == .unavailable)
            #expect(ContinuousClock.now - start < TestTimeScale.scaled(.seconds(1)), "an outage must fail fast")
        }
    }

    @Test func storeThatNeverConnectedIsUnavailable() async throws {
        let port = try freeLoopbackPort()
        try await withEventLoop { loop async throws in
            let client = LoopClient(RedisSettings(endpoint: .tcp(host: "127.0.0.1", port: port)), on: loop)
            let store = RedisCredentialStore(client: client.client, settings: client.client.settings)
            let error = await storeError {
                _ = try await loop.flatSubmit { store.apiKey(hash: keyHash(1)) }.get()
            }
            #expect(error == .unavailable)
            await client.close()
        }
    }
}
