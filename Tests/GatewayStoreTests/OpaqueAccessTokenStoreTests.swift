import Foundation
import GatewayRedis
import GatewayRedisTestSupport
import GatewayStore
import NIOCore
import Testing

// The Redis store of opaque access tokens against a real redis-server (a missing
// redis-server fails, never skips).

private let now: Int64 = 1_700_000_000

private func tokenHash(_ seed: Int) -> String {
    let hex = String(seed, radix: 16)
    return String(repeating: "0", count: 64 - hex.count) + hex
}

private func tokenRecord(_ id: String, expiresAt: Int64 = now + 600) -> OpaqueAccessTokenRecord {
    OpaqueAccessTokenRecord(
        clientID: "cid_client",
        subject: "client:cid_client",
        scopes: ["read:databases", "read:logs"],
        tokenID: id,
        issuedAt: now,
        expiresAt: expiresAt
    )
}

@Suite struct OpaqueAccessTokenStoreTests {
    /// Runs `body` with a store over a fresh redis-server (or one-node cluster, whose harness
    /// checks every key is in the `{gw}` slot), a raw client for inspecting keys, and the
    /// harness that watches the events channel.
    private func withTokenStore(
        _ kind: StoreKind = .redis,
        _ body: @escaping (StoreHarness, RedisOpaqueAccessTokenStore, LoopClient) async throws -> Void
    ) async throws {
        try await withStore(kind) { harness async throws in
            let raw = harness.redis!
            let store = RedisOpaqueAccessTokenStore(client: raw.client, keyPrefix: kind.keyPrefix)
            try await body(harness, store, raw)
        }
    }

    @Test(arguments: [StoreKind.redis, .redisCluster])
    func storedRecordIsReadBackUnderItsHashWithTheTokensLifetime(kind: StoreKind) async throws {
        try await withTokenStore(kind) { _, store, raw in
            let record = tokenRecord("at-1")
            try await raw.eventLoop.flatSubmit {
                store.storeOpaqueAccessToken(hash: tokenHash(1), record: record, now: now)
            }.get()
            #expect(try await raw.eventLoop.flatSubmit { store.opaqueAccessToken(hash: tokenHash(1)) }.get() == record)
            #expect(try await raw.eventLoop.flatSubmit { store.opaqueAccessToken(hash: tokenHash(2)) }.get() == nil)

            // The layout other components (and the e2e tests) write by hand.
            guard
                case .bulkString(let json) = try await raw.send(["GET", "\(kind.keyPrefix)oauth-at:\(tokenHash(1))"]),
                let object = try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any]
            else {
                Issue.record("no JSON record under dbgw:oauth-at:<hash>")
                return
            }
            #expect(Set(object.keys) == ["client_id", "subject", "scopes", "token_id", "issued_at", "expires_at"])
            guard case .integer(let ttl) = try await raw.send(["TTL", "\(kind.keyPrefix)oauth-at:\(tokenHash(1))"])
            else {
                Issue.record("TTL did not answer an integer")
                return
            }
            #expect(ttl > 0 && ttl <= 600, "the key expires with the token, never later")

            // A second token under the same hash is refused, never overwrites.
            await #expect(throws: CredentialStoreError.conflict) {
                try await raw.eventLoop.flatSubmit {
                    store.storeOpaqueAccessToken(hash: tokenHash(1), record: tokenRecord("at-2"), now: now)
                }.get()
            }
            #expect(try await raw.eventLoop.flatSubmit { store.opaqueAccessToken(hash: tokenHash(1)) }.get() == record)
        }
    }

    @Test func revocationDeletesAndAnnouncesOnTheEventsChannel() async throws {
        try await withTokenStore { harness, store, raw in
            try await harness.watchRevocations()
            try await raw.eventLoop.flatSubmit {
                store.storeOpaqueAccessToken(hash: tokenHash(1), record: tokenRecord("at-1"), now: now)
            }.get()
            #expect(
                try await raw.eventLoop.flatSubmit { store.revokeOpaqueAccessToken(hash: tokenHash(1)) }.get() == true
            )
            #expect(try await raw.eventLoop.flatSubmit { store.opaqueAccessToken(hash: tokenHash(1)) }.get() == nil)
            let announced = await eventually { harness.revocationEvents.count >= 1 }
            #expect(announced, "no revocation announced")
            #expect(harness.revocationEvents == ["message dbgw:events revoke oauth-at \(tokenHash(1))"])
            // Already gone: false, announced again (a cache that missed the first drops it now).
            #expect(
                try await raw.eventLoop.flatSubmit { store.revokeOpaqueAccessToken(hash: tokenHash(1)) }.get() == false
            )
            #expect(await eventually { harness.revocationEvents.count == 2 })
        }
    }

    /// On a cluster the script announces with `SPUBLISH` (its key and the channel share the
    /// tag's slot); where `SPUBLISH` is unknown (renamed away here; Redis before 7 answers the
    /// same) it falls back to `PUBLISH` inside the script, and the token is still deleted.
    @Test(arguments: [false, true])
    func revocationOnAClusterAnnouncesOverShardedPubSubOrFallsBack(withoutShardedPubSub: Bool) async throws {
        let renamed = ["--rename-command", "SPUBLISH", "", "--rename-command", "SSUBSCRIBE", ""]
        let server = try await startSingleNodeCluster(arguments: withoutShardedPubSub ? renamed : [])
        defer { server.stop() }
        try await withEventLoop { loop async throws in
            let harness = StoreHarness(kind: .redisCluster, eventLoop: loop, server: server)
            let raw = harness.redis!
            let store = RedisOpaqueAccessTokenStore(client: raw.client, keyPrefix: "dbgw:{gw}:")
            try await harness.watchRevocations(sharded: !withoutShardedPubSub)
            try await raw.eventLoop.flatSubmit {
                store.storeOpaqueAccessToken(hash: tokenHash(1), record: tokenRecord("at-1"), now: now)
            }.get()
            #expect(
                try await raw.eventLoop.flatSubmit { store.revokeOpaqueAccessToken(hash: tokenHash(1)) }.get() == true
            )
            #expect(try await raw.eventLoop.flatSubmit { store.opaqueAccessToken(hash: tokenHash(1)) }.get() == nil)
            #expect(await eventually { harness.revocationEvents.count >= 1 }, "no revocation announced")
            let kind = withoutShardedPubSub ? "message" : "smessage"
            #expect(harness.revocationEvents == ["\(kind) dbgw:{gw}:events revoke oauth-at \(tokenHash(1))"])
            await harness.shutdown()
        }
    }

    @Test(arguments: [StoreKind.redis, .redisCluster])
    func recordsTheGatewayDidNotWriteAreCorrupt(kind: StoreKind) async throws {
        try await withTokenStore(kind) { _, store, raw in
            let hostile = [
                #"{"client_id":"c","subject":"s","scopes":["bad scope"],"token_id":"t","issued_at":1,"expires_at":2}"#,
                #"{"client_id":"","subject":"s","scopes":[],"token_id":"t","issued_at":1,"expires_at":2}"#,
                #"{"subject":"s","scopes":[],"token_id":"t","issued_at":1,"expires_at":2}"#,
                "not json",
                String(repeating: "x", count: 20_000),
            ]
            for (index, value) in hostile.enumerated() {
                _ = try await raw.send(["SET", "\(kind.keyPrefix)oauth-at:\(tokenHash(index + 10))", value])
                await #expect(throws: CredentialStoreError.self) {
                    try await raw.eventLoop.flatSubmit { store.opaqueAccessToken(hash: tokenHash(index + 10)) }.get()
                }
            }
        }
    }

    @Test func revocationMessagesParseStrictly() {
        let hash = tokenHash(0xabcdef)
        #expect(RevocationMessage.encode(opaqueAccessTokenHash: hash) == "revoke oauth-at \(hash)")
        #expect(RevocationMessage.opaqueAccessTokenHash(from: "revoke oauth-at \(hash)") == hash)
        #expect(RevocationMessage.opaqueAccessTokenHash(from: "revoke apikey \(hash)") == nil)
        #expect(RevocationMessage.opaqueAccessTokenHash(from: "revoke oauth-at \(hash.uppercased())") == nil)
        #expect(RevocationMessage.opaqueAccessTokenHash(from: "revoke oauth-at \(hash.dropLast())") == nil)
        #expect(RevocationMessage.opaqueAccessTokenHash(from: "revoke oauth-at \(hash) extra") == nil)
        #expect(RevocationMessage.opaqueAccessTokenHash(from: "revoke  oauth-at \(hash)") == nil)
    }
}

/// The shared introspection cache on a real redis-server.
@Suite struct RedisIntrospectionCacheTests {
    @Test func resultsExpireAtCachedUntilAndHostileValuesAreCorrupt() async throws {
        try await withStore(.redis) { harness async throws in
            let raw = harness.redis!
            let cache = RedisIntrospectionCache(client: raw.client, keyPrefix: "dbgw:")
            let result = IntrospectionResult(
                active: true,
                subject: "ext-1",
                clientID: "partner",
                scopes: ["read:logs"],
                issuer: "https://as.test",
                expiresAt: now + 7200,
                // An hour, not a minute: a sanitized run has suspended a test longer than a
                // minute between two awaits, and the key must still be there to be read.
                cachedUntil: now + 3600
            )
            let start = ContinuousClock.now
            try await raw.eventLoop.flatSubmit {
                cache.cacheIntrospection(hash: tokenHash(1), result: result, now: now)
            }.get()
            #expect(
                try await raw.eventLoop.flatSubmit { cache.cachedIntrospection(hash: tokenHash(1)) }.get() == result
            )
            #expect(try await raw.eventLoop.flatSubmit { cache.cachedIntrospection(hash: tokenHash(2)) }.get() == nil)
            guard case .integer(let ttl) = try await raw.send(["TTL", "dbgw:introspect:\(tokenHash(1))"]) else {
                Issue.record("TTL did not answer an integer")
                return
            }
            #expect(
                ttlIsWhatWasSet(ttl, set: 3600, since: start),
                "the key expires at cachedUntil, never later: \(ttl)"
            )
            // Nothing is written for a result already past its cachedUntil.
            try await raw.eventLoop.flatSubmit {
                cache.cacheIntrospection(hash: tokenHash(3), result: .inactive(until: now), now: now)
            }.get()
            #expect(try await raw.send(["EXISTS", "dbgw:introspect:\(tokenHash(3))"]) == .integer(0))
            // An active result that names nobody, or bad scopes: not what the gateway wrote.
            for (index, value) in [
                #"{"active":true,"scopes":[],"cached_until":1}"#,
                #"{"active":false,"scopes":["a b"],"cached_until":1}"#,
                "[]",
            ].enumerated() {
                _ = try await raw.send(["SET", "dbgw:introspect:\(tokenHash(index + 10))", value])
                await #expect(throws: CredentialStoreError.self) {
                    try await raw.eventLoop.flatSubmit { cache.cachedIntrospection(hash: tokenHash(index + 10)) }.get()
                }
            }
        }
    }
}
