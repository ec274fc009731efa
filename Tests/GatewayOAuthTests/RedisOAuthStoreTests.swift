import Foundation
import GatewayConfig
import GatewayRedis
import GatewayRedisTestSupport
import GatewayStore
import NIOCore
import NIOPosix
import Testing

/// `RedisOAuthStore` against a real redis-server, and on a one-node Redis Cluster with the
/// cluster key layout (Redis there refuses any script whose keys cross slots, and every key
/// the store wrote must be in the slot of the `{gw}` tag): the one-script code redemption
/// (single use under concurrency, reuse reported with what was issued, expiry), consents,
/// clients.
@Suite struct RedisOAuthStoreTests {
    static let now: Int64 = 1_700_000_000

    /// Where the store runs.
    enum Deployment: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case redis
        case redisCluster

        var testDescription: String { self.rawValue }

        /// The stores' key prefix, with the hash tag on a cluster.
        var prefix: String { self == .redisCluster ? "dbgw:{gw}:" : "dbgw:" }
    }

    /// Codes live an hour here, not a minute: their Redis TTL runs in real seconds, and a
    /// sanitized run has suspended a test longer than a minute between two awaits.
    static func record(
        expiresAt: Int64 = now + 3600,
        challenge: String? = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    ) -> AuthorizationCodeRecord {
        AuthorizationCodeRecord(
            clientID: "app",
            redirectURI: "https://app.example.test/cb",
            codeChallenge: challenge,
            userID: "usr_1",
            email: "ada@example.test",
            scopes: ["read:logs"],
            issuedAt: now,
            expiresAt: expiresAt
        )
    }

    /// Runs `body` with a store (and a second one on its own connection) over a fresh server
    /// of `deployment`; on a cluster, afterwards, every key is in the tag's slot.
    func withStores(
        _ deployment: Deployment,
        _ body: (RedisOAuthStore, RedisOAuthStore, LoopClient, any EventLoop) async throws -> Void
    ) async throws {
        let server = deployment == .redisCluster ? try await startSingleNodeCluster() : try RedisServer.start()
        defer { server.stop() }
        var settings = deployment == .redisCluster ? redisClusterSettings(server) : redisSettings(server)
        // The stores' logic is tested here, not Redis timeouts: 20 parallel redemptions on a
        // cluster under ThreadSanitizer have outlasted the support's 500 ms default.
        settings.commandTimeout = .seconds(5)
        #expect(settings.storeKeyPrefix == deployment.prefix)
        try await withEventLoop { loop in
            let first = LoopClient(settings, on: loop)
            let second = LoopClient(settings, on: loop)
            let a = RedisOAuthStore(client: first.client, keyPrefix: deployment.prefix)
            let b = RedisOAuthStore(client: second.client, keyPrefix: deployment.prefix)
            do {
                try await body(a, b, first, loop)
                if deployment == .redisCluster {
                    #expect(try await keysOutsideTheSlot(of: deployment.prefix, first) == [])
                }
            } catch {
                await first.close()
                await second.close()
                throw error
            }
            await first.close()
            await second.close()
        }
    }

    func run<T: Sendable>(_ loop: any EventLoop, _ body: @escaping @Sendable () -> EventLoopFuture<T>) async throws -> T
    {
        try await loop.flatSubmit(body).get()
    }

    @Test(arguments: Deployment.allCases)
    func aCodeIsRedeemedOnceAndItsReuseReportsWhatWasIssued(deployment: Deployment) async throws {
        try await withStores(deployment) { store, _, redis, loop in
            let hash = String(repeating: "c", count: 64)
            let record = Self.record()
            try await run(loop) { store.storeCode(codeHash: hash, record: record, now: Self.now) }
            // The record is the JSON the e2e tests write, under the documented key.
            guard
                case .bulkString(let stored) = try await redis.send(["GET", "\(deployment.prefix)oauth-code:\(hash)"])
            else {
                Issue.record("no code record")
                return
            }
            #expect(try JSONDecoder().decode(AuthorizationCodeRecord.self, from: Data(stored)) == record)
            #expect(try await run(loop) { store.redeemCode(codeHash: hash, now: Self.now + 1) } == .redeemed(record))
            let issuance = CodeIssuance(
                refreshTokenHash: String(repeating: "r", count: 64),
                accessTokenID: "jti-1",
                accessTokenExpiresAt: Self.now + 3600
            )
            #expect(try await run(loop) { store.recordIssued(fromCode: hash, issuance: issuance) })
            #expect(
                try await run(loop) { store.redeemCode(codeHash: hash, now: Self.now + 2) }
                    == .reused(record, issued: issuance)
            )
            // Still reuse (never redeemed again), and still naming what to revoke.
            #expect(
                try await run(loop) { store.redeemCode(codeHash: hash, now: Self.now + 3) }
                    == .reused(record, issued: issuance)
            )
        }
    }

    @Test(arguments: Deployment.allCases)
    func aReuseDuringTheFirstRedemptionMakesItsRecordFail(deployment: Deployment) async throws {
        try await withStores(deployment) { store, _, _, loop in
            let hash = String(repeating: "d", count: 64)
            try await run(loop) { store.storeCode(codeHash: hash, record: Self.record(), now: Self.now) }
            #expect(try await run(loop) { store.redeemCode(codeHash: hash, now: Self.now) } == .redeemed(Self.record()))
            #expect(
                try await run(loop) { store.redeemCode(codeHash: hash, now: Self.now) }
                    == .reused(Self.record(), issued: nil)
            )
            // The first redemption learns of the reuse when it records: it must revoke.
            #expect(
                try await !run(loop) { store.recordIssued(fromCode: hash, issuance: CodeIssuance(accessTokenID: "j")) }
            )
        }
    }

    @Test(arguments: Deployment.allCases)
    func ofManyParallelRedemptionsExactlyOneWins(deployment: Deployment) async throws {
        try await withStores(deployment) { store, other, _, loop in
            let hash = String(repeating: "e", count: 64)
            try await run(loop) { store.storeCode(codeHash: hash, record: Self.record(), now: Self.now) }
            let results = try await run(loop) { () -> EventLoopFuture<[CodeRedemption]> in
                let all = (0..<20).map { index in
                    (index % 2 == 0 ? store : other).redeemCode(codeHash: hash, now: Self.now + 1)
                }
                return EventLoopFuture.whenAllSucceed(all, on: loop)
            }
            #expect(results.filter { if case .redeemed = $0 { true } else { false } }.count == 1)
            #expect(results.filter { if case .reused = $0 { true } else { false } }.count == 19)
        }
    }

    @Test(arguments: Deployment.allCases)
    func expiredAndUnknownCodesAreInvalid(deployment: Deployment) async throws {
        try await withStores(deployment) { store, _, _, loop in
            let hash = String(repeating: "f", count: 64)
            try await run(loop) {
                store.storeCode(codeHash: hash, record: Self.record(expiresAt: Self.now + 3600), now: Self.now)
            }
            #expect(try await run(loop) { store.redeemCode(codeHash: hash, now: Self.now + 3600) } == .invalid)
            #expect(
                try await run(loop) { store.redeemCode(codeHash: String(repeating: "0", count: 64), now: Self.now) }
                    == .invalid
            )
            // A code is never stored twice under one hash.
            await #expect(throws: CredentialStoreError.conflict) {
                try await run(loop) { store.storeCode(codeHash: hash, record: Self.record(), now: Self.now) }
            }
        }
    }

    @Test(arguments: Deployment.allCases)
    func theAccessTokensOfAGrantAreRecordedAndTakenOnce(deployment: Deployment) async throws {
        try await withStores(deployment) { store, _, redis, loop in
            let start = ContinuousClock.now
            let jwt = GrantAccessToken.jwt(tokenID: "jti-1", expiresAt: Self.now + 3600)
            let opaque = GrantAccessToken.opaque(hash: String(repeating: "a", count: 64))
            try await run(loop) {
                store.recordGrantAccessToken(family: "fam", token: jwt, keepUntil: Self.now + 4500, now: Self.now)
            }
            try await run(loop) {
                store.recordGrantAccessToken(family: "fam", token: opaque, keepUntil: Self.now + 100, now: Self.now)
            }
            // Kept as long as the longest entry needs.
            guard case .integer(let ttl) = try await redis.send(["TTL", "\(deployment.prefix)oauth-grant-tokens:fam"])
            else {
                Issue.record("no TTL")
                return
            }
            #expect(ttlIsWhatWasSet(ttl, set: 4500, since: start), "TTL \(ttl)")
            #expect(Set(try await run(loop) { store.takeGrantAccessTokens(family: "fam") }) == [jwt, opaque])
            #expect(try await run(loop) { store.takeGrantAccessTokens(family: "fam") } == [])
            // Garbage members are skipped, not trusted.
            _ = try await redis.send([
                "SADD", "\(deployment.prefix)oauth-grant-tokens:bad", "j notanumber x", "o short", "x y",
            ])
            #expect(try await run(loop) { store.takeGrantAccessTokens(family: "bad") } == [])
        }
    }

    @Test(arguments: Deployment.allCases)
    func consentsAreRememberedSortedAndRevoked(deployment: Deployment) async throws {
        try await withStores(deployment) { store, _, _, loop in
            #expect(try await run(loop) { store.consent(userID: "usr_1", clientID: "app") } == nil)
            try await run(loop) {
                store.storeConsent(userID: "usr_1", clientID: "app", scopes: ["read:logs", "admin", "read:logs"])
            }
            #expect(try await run(loop) { store.consent(userID: "usr_1", clientID: "app") } == ["admin", "read:logs"])
            #expect(try await run(loop) { store.consent(userID: "usr_1", clientID: "other") } == nil)
            try await run(loop) { store.revokeConsent(userID: "usr_1", clientID: "app") }
            #expect(try await run(loop) { store.consent(userID: "usr_1", clientID: "app") } == nil)
        }
    }

    @Test(arguments: Deployment.allCases)
    func clientsAreCreatedListedReplacedAndRemoved(deployment: Deployment) async throws {
        try await withStores(deployment) { store, _, _, loop in
            let client = OAuthClient(
                id: "cid_1",
                name: "One",
                redirectURIs: ["https://a.test/cb"],
                grantTypes: [.authorizationCode, .refreshToken],
                scopes: ["read:logs"],
                isPublic: false,
                secretHash: String(repeating: "1", count: 64),
                source: .store,
                createdAt: Self.now
            )
            try await run(loop) { store.createClient(client) }
            await #expect(throws: CredentialStoreError.conflict) { try await run(loop) { store.createClient(client) } }
            #expect(try await run(loop) { store.client(id: "cid_1") } == client)
            var rotated = client
            rotated.secretHash = String(repeating: "2", count: 64)
            let replacement = rotated
            #expect(try await run(loop) { store.replaceClient(replacement) })
            #expect(try await run(loop) { store.listClients() } == [rotated])
            #expect(try await run(loop) { store.removeClient(id: "cid_1") })
            #expect(try await !run(loop) { store.removeClient(id: "cid_1") })
            #expect(try await !run(loop) { store.replaceClient(replacement) })
            #expect(try await run(loop) { store.listClients() } == [])
        }
    }
}
