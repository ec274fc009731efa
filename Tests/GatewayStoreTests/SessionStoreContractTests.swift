import Foundation
import GatewayConfig
import GatewayRedis
import GatewayRedisTestSupport
import GatewayStore
import NIOCore
import NIOPosix
import Testing

// One contract, two stores: every test runs against InMemorySessionStore and against
// RedisSessionStore on a real redis-server (a missing redis-server fails, never skips).

private let sessionPrefix = "dbgw:"

final class SessionStoreHarness: @unchecked Sendable {
    let kind: StoreKind
    let eventLoop: any EventLoop
    let redis: LoopClient?
    private let secondRedis: LoopClient?
    private let store: any SessionStore
    private let secondStore: any SessionStore

    init(kind: StoreKind, eventLoop: any EventLoop, server: RedisServer?) {
        self.kind = kind
        self.eventLoop = eventLoop
        switch kind {
        case .inMemory:
            let data = InMemorySessionData()
            self.store = InMemorySessionStore(eventLoop: eventLoop, data: data)
            self.secondStore = InMemorySessionStore(eventLoop: eventLoop, data: data)
            self.redis = nil
            self.secondRedis = nil
        case .redis, .redisCluster:
            let first = LoopClient(kind.settings(server!), on: eventLoop)
            let second = LoopClient(kind.settings(server!), on: eventLoop)
            self.store = RedisSessionStore(client: first.client, keyPrefix: kind.keyPrefix)
            self.secondStore = RedisSessionStore(client: second.client, keyPrefix: kind.keyPrefix)
            self.redis = first
            self.secondRedis = second
        }
    }

    func run<T: Sendable>(
        second: Bool = false,
        _ body: @escaping @Sendable (any SessionStore) -> EventLoopFuture<T>
    ) async throws -> T {
        try await self.eventLoop.flatSubmit { body(second ? self.secondStore : self.store) }.get()
    }

    func shutdown() async {
        await expectEveryKeyInTheTagSlot(self.kind, self.redis)
        await self.redis?.close()
        await self.secondRedis?.close()
    }
}

func withSessionStore(_ kind: StoreKind, _ body: (SessionStoreHarness) async throws -> Void) async throws {
    try await withContractHarness(kind, body)
}

extension SessionStoreHarness: ContractHarness {}

private func user(_ email: String, scopes: [String] = ["read:databases"], disabled: Bool = false) -> UserRecord {
    UserRecord(
        id: "u-\(email)",
        email: email,
        scopes: scopes,
        passwordHash: "scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA",
        disabled: disabled,
        createdAt: 1_700_000_000
    )
}

private let now: Int64 = 1_700_000_000

private func grant(_ family: String, expiresAt: Int64 = now + 3600) -> RefreshGrant {
    RefreshGrant(
        family: family,
        userID: "alice@example.com",
        subject: "u-1",
        scopes: ["read:databases"],
        expiresAt: expiresAt
    )
}

private func hash(_ seed: Int) -> String {
    let hex = String(seed, radix: 16)
    return String(repeating: "0", count: 64 - hex.count) + hex
}

private func sessionError(_ body: () async throws -> Void) async -> CredentialStoreError? {
    do {
        try await body()
        Issue.record("expected a CredentialStoreError, but the call succeeded")
        return nil
    } catch let error as CredentialStoreError {
        return error
    } catch {
        Issue.record("expected a CredentialStoreError, got \(error)")
        return nil
    }
}

@Suite(.timeLimit(.minutes(1)))
struct SessionStoreContractTests {
    @Test(arguments: StoreKind.allCases)
    func createUserAndConflict(kind: StoreKind) async throws {
        try await withSessionStore(kind) { h async throws in
            let alice = user("alice@example.com", scopes: ["read:databases", "admin"])
            try await h.run { $0.createUser(alice) }
            #expect(try await h.run(second: true) { $0.user(email: "alice@example.com") } == alice)
            #expect(try await h.run { $0.user(email: "bob@example.com") } == nil)
            let impostor = user("alice@example.com", scopes: ["admin"])
            #expect(await sessionError { try await h.run(second: true) { $0.createUser(impostor) } } == .conflict)
            #expect(try await h.run { $0.user(email: "alice@example.com") } == alice)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func userByIDFollowsTheRecord(kind: StoreKind) async throws {
        try await withSessionStore(kind) { h async throws in
            let alice = user("alice@example.com")
            try await h.run { $0.createUser(alice) }
            #expect(try await h.run(second: true) { $0.user(id: alice.id) } == alice)
            #expect(try await h.run { $0.user(id: "u-nobody") } == nil)
            _ = try await h.run { $0.setUserDisabled(email: alice.email, disabled: true) }
            #expect(try await h.run { $0.user(id: alice.id) }?.disabled == true)
        }
    }

    /// A user written before the id index is found by id once read by e-mail (as login and
    /// refresh do), and never before.
    @Test(arguments: [StoreKind.redis])
    func usersFromBeforeTheIDIndexAreFoundAfterTheirNextLogin(kind: StoreKind) async throws {
        try await withSessionStore(kind) { h async throws in
            let redis = try #require(h.redis)
            let old = user("old@example.com")
            let json = String(decoding: try JSONEncoder().encode(old), as: UTF8.self)
            #expect(try await redis.send(["SET", "\(sessionPrefix)user:\(old.email)", json]) == .simpleString("OK"))
            #expect(try await h.run { $0.user(id: old.id) } == nil)
            #expect(try await h.run { $0.user(email: old.email) } == old)
            #expect(try await h.run(second: true) { $0.user(id: old.id) } == old)
            // An index entry naming someone else's record does not make them this user.
            #expect(
                try await redis.send(["SET", "\(sessionPrefix)user-id:u-forged", old.email]) == .simpleString("OK")
            )
            #expect(try await h.run { $0.user(id: "u-forged") } == nil)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func setUserDisabled(kind: StoreKind) async throws {
        try await withSessionStore(kind) { h async throws in
            let alice = user("alice@example.com", scopes: ["read:databases", "write:reports"])
            try await h.run { $0.createUser(alice) }
            var disabled = alice
            disabled.disabled = true
            #expect(try await h.run { $0.setUserDisabled(email: "alice@example.com", disabled: true) } == disabled)
            #expect(try await h.run(second: true) { $0.user(email: "alice@example.com") } == disabled)
            #expect(try await h.run { $0.setUserDisabled(email: "alice@example.com", disabled: false) } == alice)
            #expect(try await h.run { $0.user(email: "alice@example.com") } == alice)
            #expect(try await h.run { $0.setUserDisabled(email: "nobody@example.com", disabled: true) } == nil)
            #expect(try await h.run { $0.user(email: "nobody@example.com") } == nil)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func setUserDisabledKeepsAUserWithoutScopesReadable(kind: StoreKind) async throws {
        try await withSessionStore(kind) { h async throws in
            let carol = user("carol@example.com", scopes: [])
            try await h.run { $0.createUser(carol) }
            var disabled = carol
            disabled.disabled = true
            let updated = try? await h.run { $0.setUserDisabled(email: "carol@example.com", disabled: true) }
            let reread = try? await h.run { $0.user(email: "carol@example.com") }
            #expect(updated == disabled)
            #expect(reread == disabled)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func refreshRotationAndReuse(kind: StoreKind) async throws {
        try await withSessionStore(kind) { h async throws in
            let family = grant("fam-1")
            try await h.run { $0.storeRefresh(tokenHash: hash(1), grant: family, now: now) }
            // A second store under the same hash is a conflict (never overwrites a live grant).
            #expect(
                await sessionError {
                    try await h.run { $0.storeRefresh(tokenHash: hash(1), grant: grant("fam-x"), now: now) }
                } == .conflict
            )

            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(1), newTokenHash: hash(2), now: now + 1) }
                    == .rotated(family)
            )
            #expect(
                try await h.run(second: true) {
                    $0.rotateRefresh(tokenHash: hash(2), newTokenHash: hash(3), now: now + 2)
                } == .rotated(family)
            )
            // hash(1) again: reuse. The family is revoked: the current token hash(3) is dead too.
            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(1), newTokenHash: hash(4), now: now + 3) } == .reused
            )
            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(3), newTokenHash: hash(5), now: now + 4) }
                    == .invalid
            )
            // Reuse once more stays refused (no second "reused" needed, never rotated).
            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(2), newTokenHash: hash(6), now: now + 5) }
                    == .invalid
            )
            // The new hashes of the refused rotations hold nothing.
            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(4), newTokenHash: hash(7), now: now + 6) }
                    == .invalid
            )
            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(5), newTokenHash: hash(8), now: now + 6) }
                    == .invalid
            )
            // Another family is unaffected.
            try await h.run { $0.storeRefresh(tokenHash: hash(10), grant: grant("fam-2"), now: now) }
            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(10), newTokenHash: hash(11), now: now + 7) }
                    == .rotated(grant("fam-2"))
            )
        }
    }

    /// The retry grace: the just-rotated token, presented again before its successor was
    /// used, answers `.retried` with the recorded answer instead of revoking the family.
    @Test(arguments: StoreKind.allCases)
    func aRetryInsideTheGraceGetsTheRecordedAnswerUntilTheSuccessorIsUsed(kind: StoreKind) async throws {
        try await withSessionStore(kind) { h async throws in
            let family = grant("fam-g")
            try await h.run { $0.storeRefresh(tokenHash: hash(1), grant: family, now: now) }
            #expect(
                try await h.run {
                    $0.rotateRefresh(tokenHash: hash(1), newTokenHash: hash(2), now: now + 1, graceSeconds: 10)
                } == .rotated(family)
            )
            // Before the answer is recorded: pending (no revocation, no second pair).
            #expect(
                try await h.run(second: true) {
                    $0.rotateRefresh(tokenHash: hash(1), newTokenHash: hash(3), now: now + 2, graceSeconds: 10)
                }
                    == .retried(successorHash: hash(2), sealedResult: nil)
            )
            try await h.run {
                $0.recordRotationResult(tokenHash: hash(1), successorHash: hash(2), sealedResult: [9, 8, 7])
            }
            // A second record (another successor) does not replace it.
            try await h.run { $0.recordRotationResult(tokenHash: hash(1), successorHash: hash(3), sealedResult: [1]) }
            #expect(
                try await h.run {
                    $0.rotateRefresh(tokenHash: hash(1), newTokenHash: hash(4), now: now + 3, graceSeconds: 10)
                }
                    == .retried(successorHash: hash(2), sealedResult: [9, 8, 7])
            )
            // The refused rotations stored nothing under their new hashes.
            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(3), newTokenHash: hash(5), now: now + 3) }
                    == .invalid
            )
            // The successor is used: from now on the old token is plain reuse.
            #expect(
                try await h.run {
                    $0.rotateRefresh(tokenHash: hash(2), newTokenHash: hash(6), now: now + 4, graceSeconds: 10)
                } == .rotated(family)
            )
            #expect(
                try await h.run {
                    $0.rotateRefresh(tokenHash: hash(1), newTokenHash: hash(7), now: now + 5, graceSeconds: 10)
                } == .reused
            )
            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(6), newTokenHash: hash(8), now: now + 6) }
                    == .invalid
            )
        }
    }

    /// A grant is bound to its OAuth client: another client (or the first-party refresh,
    /// which presents none) gets `.invalid` and the token stays usable by its own client.
    @Test(arguments: StoreKind.allCases)
    func aGrantOfAClientRotatesOnlyForThatClient(kind: StoreKind) async throws {
        try await withSessionStore(kind) { h async throws in
            let bound = RefreshGrant(
                family: "fam-c",
                userID: "alice@example.com",
                subject: "u-1",
                scopes: ["read:databases"],
                expiresAt: now + 3600,
                clientID: "app-1"
            )
            try await h.run { $0.storeRefresh(tokenHash: hash(1), grant: bound, now: now) }
            #expect(
                try await h.run {
                    $0.rotateRefresh(
                        tokenHash: hash(1),
                        newTokenHash: hash(2),
                        now: now + 1,
                        graceSeconds: 0,
                        clientID: "app-2"
                    )
                } == .invalid
            )
            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(1), newTokenHash: hash(2), now: now + 1) }
                    == .invalid
            )
            #expect(
                try await h.run {
                    $0.rotateRefresh(
                        tokenHash: hash(1),
                        newTokenHash: hash(2),
                        now: now + 2,
                        graceSeconds: 0,
                        clientID: "app-1"
                    )
                } == .rotated(bound)
            )
            // And a first-party grant is not usable by a client.
            try await h.run { $0.storeRefresh(tokenHash: hash(5), grant: grant("fam-d"), now: now) }
            #expect(
                try await h.run {
                    $0.rotateRefresh(
                        tokenHash: hash(5),
                        newTokenHash: hash(6),
                        now: now + 1,
                        graceSeconds: 0,
                        clientID: "app-1"
                    )
                } == .invalid
            )
            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(5), newTokenHash: hash(6), now: now + 1) }
                    == .rotated(grant("fam-d"))
            )
        }
    }

    /// Peeking reads a grant without spending it: current, then rotated, then gone once
    /// its family is revoked.
    @Test(arguments: StoreKind.allCases)
    func peekingAtAGrantDoesNotSpendIt(kind: StoreKind) async throws {
        try await withSessionStore(kind) { h async throws in
            let family = grant("fam-p")
            try await h.run { $0.storeRefresh(tokenHash: hash(1), grant: family, now: now) }
            #expect(
                try await h.run { $0.refreshGrant(tokenHash: hash(1), now: now) }
                    == RefreshGrantState(grant: family, isLive: true)
            )
            #expect(
                try await h.run { $0.refreshGrant(tokenHash: hash(1), now: now + 1) }
                    == RefreshGrantState(grant: family, isLive: true)
            )
            #expect(try await h.run { $0.refreshGrant(tokenHash: hash(1), now: now + 3600) } == nil)
            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(1), newTokenHash: hash(2), now: now + 1) }
                    == .rotated(family)
            )
            #expect(
                try await h.run { $0.refreshGrant(tokenHash: hash(1), now: now + 1) }
                    == RefreshGrantState(grant: family, isLive: false)
            )
            #expect(try await h.run { $0.refreshGrant(tokenHash: hash(9), now: now + 1) } == nil)
            #expect(try await h.run { $0.revokeRefreshFamily(tokenHash: hash(2), now: now) })
            #expect(try await h.run { $0.refreshGrant(tokenHash: hash(1), now: now + 1) } == nil)
        }
    }

    /// Without grace (0), the first re-presentation revokes as before.
    @Test(arguments: StoreKind.allCases)
    func withoutGraceAReuseRevokesAtOnce(kind: StoreKind) async throws {
        try await withSessionStore(kind) { h async throws in
            try await h.run { $0.storeRefresh(tokenHash: hash(1), grant: grant("fam-0"), now: now) }
            #expect(
                try await h.run {
                    $0.rotateRefresh(tokenHash: hash(1), newTokenHash: hash(2), now: now + 1, graceSeconds: 0)
                } == .rotated(grant("fam-0"))
            )
            try await h.run { $0.recordRotationResult(tokenHash: hash(1), successorHash: hash(2), sealedResult: [1]) }
            #expect(
                try await h.run {
                    $0.rotateRefresh(tokenHash: hash(1), newTokenHash: hash(3), now: now + 2, graceSeconds: 0)
                } == .reused
            )
            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(2), newTokenHash: hash(4), now: now + 3) }
                    == .invalid
            )
        }
    }

    @Test(arguments: StoreKind.allCases)
    func concurrentRotationsOfOneTokenLetAtMostOneThrough(kind: StoreKind) async throws {
        try await withSessionStore(kind) { h async throws in
            try await h.run { $0.storeRefresh(tokenHash: hash(1), grant: grant("fam"), now: now) }
            async let a = h.run { $0.rotateRefresh(tokenHash: hash(1), newTokenHash: hash(2), now: now + 1) }
            async let b = h.run(second: true) {
                $0.rotateRefresh(tokenHash: hash(1), newTokenHash: hash(3), now: now + 1)
            }
            let results = try await [a, b]
            #expect(
                results.filter { if case .rotated = $0 { return true } else { return false } }.count == 1,
                "\(results)"
            )
            #expect(results.contains(.reused))
            // Reuse revoked the family: the winner's new token is dead too.
            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(2), newTokenHash: hash(4), now: now + 2) }
                    == .invalid
            )
            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(3), newTokenHash: hash(5), now: now + 2) }
                    == .invalid
            )
        }
    }

    @Test(arguments: StoreKind.allCases)
    func expiredRefreshIsInvalid(kind: StoreKind) async throws {
        try await withSessionStore(kind) { h async throws in
            try await h.run { $0.storeRefresh(tokenHash: hash(1), grant: grant("fam", expiresAt: now + 100), now: now) }
            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(1), newTokenHash: hash(2), now: now + 100) }
                    == .invalid
            )
            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(1), newTokenHash: hash(2), now: now + 99) }
                    == .rotated(grant("fam", expiresAt: now + 100))
            )
            // The rotated token keeps the family's expiry.
            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(2), newTokenHash: hash(3), now: now + 100) }
                    == .invalid
            )
            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(99), newTokenHash: hash(98), now: now) } == .invalid
            )
        }
    }

    @Test(arguments: StoreKind.allCases)
    func revokeRefreshFamily(kind: StoreKind) async throws {
        try await withSessionStore(kind) { h async throws in
            try await h.run { $0.storeRefresh(tokenHash: hash(1), grant: grant("fam"), now: now) }
            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(1), newTokenHash: hash(2), now: now + 1) }
                    == .rotated(grant("fam"))
            )
            #expect(try await h.run { $0.revokeRefreshFamily(tokenHash: hash(2), now: now) })
            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(2), newTokenHash: hash(3), now: now + 2) }
                    == .invalid
            )
            // The spent older token is not a way back in either (family revoked): invalid, not reused.
            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(1), newTokenHash: hash(4), now: now + 2) }
                    == .invalid
            )
            #expect(try await h.run { $0.revokeRefreshFamily(tokenHash: hash(2), now: now) } == false)
            #expect(try await h.run { $0.revokeRefreshFamily(tokenHash: hash(77), now: now) } == false)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func tokenIDDenyList(kind: StoreKind) async throws {
        try await withSessionStore(kind) { h async throws in
            #expect(try await h.run { $0.isTokenIDRevoked("jti-1") } == false)
            try await h.run { $0.revokeTokenID("jti-1", expiresAt: now + 600, now: now) }
            #expect(try await h.run { $0.isTokenIDRevoked("jti-1") })
            #expect(try await h.run(second: true) { $0.isTokenIDRevoked("jti-1") })
            #expect(try await h.run { $0.isTokenIDRevoked("jti-2") } == false)
            // An id with spaces and odd characters.
            try await h.run { $0.revokeTokenID("a b:c*", expiresAt: now + 600, now: now) }
            #expect(try await h.run { $0.isTokenIDRevoked("a b:c*") })
            #expect(try await h.run { $0.isTokenIDRevoked("a b:c") } == false)
        }
    }

    @Test func revocationMessageRoundTrip() {
        let message = RevocationMessage.encode(tokenID: "id with spaces", expiresAt: 123)
        #expect(message == "revoke jti 123 id with spaces")
        let decoded = RevocationMessage.tokenID(from: message)
        #expect(decoded?.id == "id with spaces" && decoded?.expiresAt == 123)
        #expect(RevocationMessage.tokenID(from: "revoke jti x id") == nil)
        #expect(RevocationMessage.tokenID(from: "revoke jti 1 ") == nil)
        #expect(RevocationMessage.tokenID(from: "revoke apikey 1 x") == nil)
    }

    @Test func unreachableRedisIsUnavailable() async throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        try await withEventLoop { loop async throws in
            let client = LoopClient(redisSettings(server, commandTimeout: .milliseconds(200)), on: loop)
            let store = RedisSessionStore(client: client.client, keyPrefix: sessionPrefix)
            server.kill()
            let error = await sessionError {
                _ = try await loop.flatSubmit { store.isTokenIDRevoked("x") }.get()
            }
            #expect(error == .unavailable)
            await client.close()
        }
    }
}

/// Issue 18 items 5 and 6 on both stores: a session (refresh family) ended by logout, reuse
/// or by id denies its access tokens; a user's tokens are denied up to a time; the password
/// hash of a user is replaced only over the very hash the login checked.
@Suite(.timeLimit(.minutes(1)))
struct SessionRevocationContractTests {
    @Test(arguments: StoreKind.allCases)
    func item5LogoutReuseAndSessionIDEachDenyTheSession(kind: StoreKind) async throws {
        try await withSessionStore(kind) { h async throws in
            func denial(_ sid: String) async throws -> AccessTokenDenial {
                try await h.run(second: true) { $0.accessTokenDenial(tokenID: nil, sessionID: sid, userID: nil) }
            }
            for (seed, family) in [(11, "logout"), (12, "reuse"), (13, "by-id"), (14, "alive")] {
                try await h.run { $0.storeRefresh(tokenHash: hash(seed), grant: grant(family), now: now) }
            }
            #expect(try await denial("logout") == AccessTokenDenial())
            // Logout by refresh token.
            #expect(try await h.run { $0.revokeRefreshFamily(tokenHash: hash(11), now: now) })
            #expect(try await denial("logout").sessionRevoked)
            // Reuse of a rotated token.
            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(12), newTokenHash: hash(50), now: now + 1) }
                    == .rotated(grant("reuse"))
            )
            #expect(try await denial("reuse").sessionRevoked == false)
            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(12), newTokenHash: hash(51), now: now + 2) }
                    == .reused
            )
            #expect(try await denial("reuse").sessionRevoked)
            // Logout by access token (its sid): the family's refresh token dies with it.
            try await h.run { $0.revokeSession("by-id", now: now) }
            #expect(try await denial("by-id").sessionRevoked)
            #expect(
                try await h.run { $0.rotateRefresh(tokenHash: hash(13), newTokenHash: hash(60), now: now + 1) }
                    == .invalid
            )
            // Another session is untouched.
            #expect(try await denial("alive") == AccessTokenDenial())
        }
    }

    @Test(arguments: StoreKind.allCases)
    func item5UserTokensAreDeniedUpToTheLatestTime(kind: StoreKind) async throws {
        try await withSessionStore(kind) { h async throws in
            func upTo(_ id: String) async throws -> Int64? {
                try await h.run(second: true) { $0.accessTokenDenial(tokenID: nil, sessionID: nil, userID: id) }
                    .userRevokedUpTo
            }
            #expect(try await upTo("usr_a") == nil)
            try await h.run { $0.revokeUserTokens(userID: "usr_a", issuedUpTo: now + 10, now: now + 10) }
            #expect(try await upTo("usr_a") == now + 10)
            // A slower, older disable never shortens a later one.
            try await h.run { $0.revokeUserTokens(userID: "usr_a", issuedUpTo: now + 5, now: now + 5) }
            #expect(try await upTo("usr_a") == now + 10)
            #expect(try await upTo("usr_b") == nil)
            // All three answers in one call.
            try await h.run { $0.revokeTokenID("jti-9", expiresAt: now + 600, now: now) }
            let all = try await h.run {
                $0.accessTokenDenial(tokenID: "jti-9", sessionID: "none", userID: "usr_a")
            }
            #expect(all == AccessTokenDenial(tokenIDRevoked: true, sessionRevoked: false, userRevokedUpTo: now + 10))
        }
    }

    @Test(arguments: StoreKind.allCases)
    func item6PasswordHashIsReplacedOnlyOverTheCheckedHash(kind: StoreKind) async throws {
        try await withSessionStore(kind) { h async throws in
            let alice = user("alice@example.com")
            try await h.run { $0.createUser(alice) }
            let old = alice.passwordHash
            #expect(try await h.run { $0.replacePasswordHash(email: alice.email, expectedHash: old, newHash: "new-1") })
            #expect(try await h.run(second: true) { $0.user(email: alice.email) }?.passwordHash == "new-1")
            // A second rehash from the same (now stale) read loses: the newer hash stays.
            #expect(
                try await h.run { $0.replacePasswordHash(email: alice.email, expectedHash: old, newHash: "new-2") }
                    == false
            )
            #expect(try await h.run { $0.user(email: alice.email) }?.passwordHash == "new-1")
            // Nothing else of the record changes; an unknown user is no write.
            var expected = alice
            expected.passwordHash = "new-1"
            #expect(try await h.run { $0.user(email: alice.email) } == expected)
            #expect(
                try await h.run { $0.replacePasswordHash(email: "nobody@example.com", expectedHash: old, newHash: "x") }
                    == false
            )
        }
    }

    @Test func item5InMemoryDataTellsEveryListenerOfSessionsAndUsers() async throws {
        final class Heard: @unchecked Sendable {
            let lock = NSLock()
            var list: [SessionRevocation] = []
            func append(_ revocation: SessionRevocation) { lock.withLock { list.append(revocation) } }
        }
        let heard = Heard()
        let data = InMemorySessionData(onRevoke: { heard.append($0) })
        try await withEventLoop { loop async throws in
            let store = InMemorySessionStore(eventLoop: loop, data: data)
            try await store.storeRefresh(tokenHash: hash(1), grant: grant("fam-a"), now: now).get()
            try await store.storeRefresh(tokenHash: hash(2), grant: grant("fam-b"), now: now).get()
            _ = try await store.revokeRefreshFamily(tokenHash: hash(1), now: now).get()
            _ = try await store.rotateRefresh(tokenHash: hash(2), newTokenHash: hash(3), now: now).get()
            _ = try await store.rotateRefresh(tokenHash: hash(2), newTokenHash: hash(4), now: now + 1).get()
            try await store.revokeSession("fam-c", now: now).get()
            try await store.revokeUserTokens(userID: "usr_x", issuedUpTo: now, now: now).get()
        }
        let until = now + AccessTokenDenial.retentionSeconds
        #expect(
            heard.lock.withLock { heard.list } == [
                .session("fam-a", until: until), .session("fam-b", until: until + 1), .session("fam-c", until: until),
                .user("usr_x", issuedUpTo: now, until: until),
            ]
        )
    }

    @Test func item5SessionAndUserMessagesAreParsedStrictly() {
        let session = RevocationMessage.encode(sessionID: "Fam_-1", until: 123)
        #expect(session == "revoke session 123 Fam_-1")
        #expect(RevocationMessage.sessionID(from: session)! == ("Fam_-1", 123))
        let user = RevocationMessage.encode(userID: "usr_AB-c", issuedUpTo: 100, until: 200)
        #expect(user == "revoke user 200 100 usr_AB-c")
        #expect(RevocationMessage.userID(from: user)! == ("usr_AB-c", 100, 200))
        for bad in [
            "revoke session 123", "revoke session 123 a b", "revoke session -1 a", "revoke session +1 a",
            "revoke session 1 a*b", "revoke session 1 ", "revoke session x a", "revoke  session 1 a",
            "revoke session 1234567890123 a", "revoke session 1 " + String(repeating: "a", count: 129),
            "revoke jti 1 a", "Revoke session 1 a",
        ] {
            #expect(RevocationMessage.sessionID(from: bad) == nil, "\(bad)")
        }
        for bad in [
            "revoke user 1 2", "revoke user 1 2 a b", "revoke user 1 x a", "revoke user x 1 a", "revoke user 1 2 a:b",
            "revoke session 1 a", "revoke user 1 2 ",
        ] {
            #expect(RevocationMessage.userID(from: bad) == nil, "\(bad)")
        }
        // The older messages do not read as the new ones, nor the reverse.
        #expect(RevocationMessage.tokenID(from: session) == nil && RevocationMessage.tokenID(from: user) == nil)
        #expect(RevocationMessage.apiKeyHash(from: session) == nil)
        #expect(RevocationMessage.opaqueAccessTokenHash(from: user) == nil)
    }
}
