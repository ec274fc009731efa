import Foundation
import GatewayRedis
import GatewayRedisTestSupport
import GatewayStore
import NIOCore
import Testing

// The Redis store of browser sessions and authorization flows against a real redis-server
// and on a one-node Redis Cluster with the cluster key layout, where Redis refuses any script
// whose keys cross slots and the harness checks every key is in the `{gw}` slot (a missing
// redis-server fails, never skips).

private func sessionHash(_ seed: Int) -> String {
    let hex = String(seed, radix: 16)
    return String(repeating: "0", count: 64 - hex.count) + hex
}

private func session(_ user: String, seen: Int64 = 1000) -> BrowserSessionRecord {
    BrowserSessionRecord(
        userID: user,
        email: "\(user)@example.test",
        createdAt: 1000,
        lastSeen: seen,
        csrfToken: "csrf-\(user)"
    )
}

@Suite struct BrowserStateStoreTests {
    private func withBrowserStore(
        _ kind: StoreKind,
        _ body: @escaping (RedisBrowserStateStore, LoopClient) async throws -> Void
    ) async throws {
        try await withStore(kind) { harness async throws in
            let raw = harness.redis!
            try await body(RedisBrowserStateStore(client: raw.client, keyPrefix: kind.keyPrefix), raw)
        }
    }

    private func ttl(_ raw: LoopClient, _ key: String) async throws -> Int64 {
        guard case .integer(let ttl) = try await raw.send(["TTL", key]) else { return -100 }
        return ttl
    }

    @Test(arguments: [StoreKind.redis, .redisCluster])
    func sessionsAreStoredUnderTheirHashWithTheGivenLifetime(kind: StoreKind) async throws {
        try await withBrowserStore(kind) { store, raw in
            let loop = raw.eventLoop
            let start = ContinuousClock.now
            try await loop.flatSubmit { store.createSession(hash: sessionHash(1), record: session("usr_a"), ttl: 1800) }
                .get()
            #expect(try await loop.flatSubmit { store.session(hash: sessionHash(1)) }.get() == session("usr_a"))
            #expect(try await loop.flatSubmit { store.session(hash: sessionHash(2)) }.get() == nil)
            let keyTTL = try await ttl(raw, "\(kind.keyPrefix)browser-session:\(sessionHash(1))")
            // The given lifetime (not another one), whatever time the test itself took.
            #expect(ttlIsWhatWasSet(keyTTL, set: 1800, since: start), "TTL \(keyTTL)")
            guard
                case .bulkString(let json) = try await raw.send([
                    "GET", "\(kind.keyPrefix)browser-session:\(sessionHash(1))",
                ]),
                let object = try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any]
            else {
                Issue.record("no JSON under dbgw:browser-session:<hash>")
                return
            }
            #expect(Set(object.keys) == ["user_id", "email", "created_at", "last_seen", "csrf_token"])
        }
    }

    @Test(arguments: [StoreKind.redis, .redisCluster])
    func touchRewritesButNeverResurrects(kind: StoreKind) async throws {
        try await withBrowserStore(kind) { store, raw in
            let loop = raw.eventLoop
            try await loop.flatSubmit { store.createSession(hash: sessionHash(1), record: session("usr_a"), ttl: 1800) }
                .get()
            try await loop.flatSubmit {
                store.touchSession(hash: sessionHash(1), record: session("usr_a", seen: 1500), ttl: 600)
            }.get()
            #expect(try await loop.flatSubmit { store.session(hash: sessionHash(1)) }.get()?.lastSeen == 1500)
            #expect(try await ttl(raw, "\(kind.keyPrefix)browser-session:\(sessionHash(1))") <= 600)
            try await loop.flatSubmit { store.deleteSession(hash: sessionHash(1)) }.get()
            // Signed out meanwhile: a late touch must not bring the session back.
            try await loop.flatSubmit {
                store.touchSession(hash: sessionHash(1), record: session("usr_a", seen: 1600), ttl: 600)
            }.get()
            #expect(try await loop.flatSubmit { store.session(hash: sessionHash(1)) }.get() == nil)
        }
    }

    @Test(arguments: [StoreKind.redis, .redisCluster])
    func deletingAUsersSessionsLeavesOthers(kind: StoreKind) async throws {
        try await withBrowserStore(kind) { store, raw in
            let loop = raw.eventLoop
            for seed in 1...3 {
                try await loop.flatSubmit {
                    store.createSession(hash: sessionHash(seed), record: session("usr_a"), ttl: 1800)
                }.get()
            }
            try await loop.flatSubmit { store.createSession(hash: sessionHash(9), record: session("usr_b"), ttl: 1800) }
                .get()
            try await loop.flatSubmit { store.deleteSession(hash: sessionHash(3)) }.get()
            #expect(try await loop.flatSubmit { store.deleteSessions(userID: "usr_a") }.get() == 2)
            for seed in 1...3 {
                #expect(try await loop.flatSubmit { store.session(hash: sessionHash(seed)) }.get() == nil)
            }
            #expect(try await loop.flatSubmit { store.session(hash: sessionHash(9)) }.get() == session("usr_b"))
            #expect(try await raw.send(["EXISTS", "\(kind.keyPrefix)browser-sessions:usr_a"]) == .integer(0))
            #expect(try await loop.flatSubmit { store.deleteSessions(userID: "usr_a") }.get() == 0)
        }
    }

    @Test(arguments: [StoreKind.redis, .redisCluster])
    func flowsLiveTheirTTLAndAreDeleted(kind: StoreKind) async throws {
        try await withBrowserStore(kind) { store, raw in
            let loop = raw.eventLoop
            let start = ContinuousClock.now
            try await loop.flatSubmit { store.storeFlow(id: "f1", json: "{\"a\":1}", ttl: 600) }.get()
            #expect(try await loop.flatSubmit { store.flow(id: "f1") }.get() == "{\"a\":1}")
            let flowTTL = try await ttl(raw, "\(kind.keyPrefix)oauth-flow:f1")
            #expect(ttlIsWhatWasSet(flowTTL, set: 600, since: start), "TTL \(flowTTL)")
            #expect(try await loop.flatSubmit { store.deleteFlow(id: "f1") }.get() == true)
            #expect(try await loop.flatSubmit { store.flow(id: "f1") }.get() == nil)
            // Only one caller ends a flow.
            #expect(try await loop.flatSubmit { store.deleteFlow(id: "f1") }.get() == false)
        }
    }
}
