import GatewayStore
import GatewayTestSupport
import NIOCore
import NIOPosix
import Testing

// The demo's in-memory OAuth and browser state: the same single-use, reuse and lifetime
// rules as the Redis stores.

private let now: Int64 = 1_700_000_000

private func codeRecord(expiresAt: Int64 = now + 60) -> AuthorizationCodeRecord {
    AuthorizationCodeRecord(
        clientID: "demo-app",
        redirectURI: "http://127.0.0.1:9/callback",
        codeChallenge: nil,
        userID: "usr_1",
        email: "a@example.test",
        scopes: ["read:databases"],
        issuedAt: now,
        expiresAt: expiresAt
    )
}

@Suite struct InMemoryOAuthStoreTests {
    private let loop = MultiThreadedEventLoopGroup.singleton.next()

    @Test func aCodeIsRedeemedOnceAndAReuseReturnsWhatWasIssued() throws {
        let data = InMemoryOAuthData()
        let first = InMemoryOAuthStore(eventLoop: loop, data: data)
        let second = InMemoryOAuthStore(eventLoop: loop, data: data)
        try first.storeCode(codeHash: "h", record: codeRecord(), now: now).wait()
        #expect(throws: CredentialStoreError.self) {
            try first.storeCode(codeHash: "h", record: codeRecord(), now: now).wait()
        }
        #expect(try second.redeemCode(codeHash: "h", now: now + 1).wait() == .redeemed(codeRecord()))
        let issued = CodeIssuance(refreshTokenHash: "r", accessTokenID: "j", accessTokenExpiresAt: now + 3600)
        #expect(try first.recordIssued(fromCode: "h", issuance: issued).wait())
        #expect(try second.redeemCode(codeHash: "h", now: now + 2).wait() == .reused(codeRecord(), issued: issued))
        // After a reuse the first redemption may not record anything more: it must revoke.
        #expect(try first.recordIssued(fromCode: "h", issuance: issued).wait() == false)
        #expect(try first.redeemCode(codeHash: "unknown", now: now).wait() == .invalid)
    }

    @Test func aReuseBeforeAnythingWasRecordedMakesTheRecordFail() throws {
        let store = InMemoryOAuthStore(eventLoop: loop, data: InMemoryOAuthData())
        try store.storeCode(codeHash: "h", record: codeRecord(), now: now).wait()
        #expect(try store.redeemCode(codeHash: "h", now: now).wait() == .redeemed(codeRecord()))
        #expect(try store.redeemCode(codeHash: "h", now: now).wait() == .reused(codeRecord(), issued: nil))
        #expect(try store.recordIssued(fromCode: "h", issuance: CodeIssuance(accessTokenID: "j")).wait() == false)
    }

    @Test func anExpiredCodeIsInvalid() throws {
        let store = InMemoryOAuthStore(eventLoop: loop, data: InMemoryOAuthData())
        try store.storeCode(codeHash: "h", record: codeRecord(expiresAt: now + 60), now: now).wait()
        #expect(try store.redeemCode(codeHash: "h", now: now + 60).wait() == .invalid)
        #expect(try store.redeemCode(codeHash: "h", now: now + 1).wait() == .invalid)
    }

    @Test func theAccessTokensOfAGrantAreTakenOnce() throws {
        let store = InMemoryOAuthStore(eventLoop: loop, data: InMemoryOAuthData())
        try store.recordGrantAccessToken(
            family: "f",
            token: .jwt(tokenID: "j1", expiresAt: now + 60),
            keepUntil: now + 60,
            now: now
        ).wait()
        try store.recordGrantAccessToken(
            family: "f",
            token: .opaque(hash: String(repeating: "a", count: 64)),
            keepUntil: now + 90,
            now: now
        ).wait()
        let taken = try store.takeGrantAccessTokens(family: "f").wait()
        #expect(
            Set(taken) == [.jwt(tokenID: "j1", expiresAt: now + 60), .opaque(hash: String(repeating: "a", count: 64))]
        )
        #expect(try store.takeGrantAccessTokens(family: "f").wait().isEmpty)
    }

    @Test func consentsAreSortedDeduplicatedAndRevocable() throws {
        let store = InMemoryOAuthStore(eventLoop: loop, data: InMemoryOAuthData())
        try store.storeConsent(userID: "usr_1", clientID: "c", scopes: ["read:logs", "read:databases", "read:logs"])
            .wait()
        #expect(try store.consent(userID: "usr_1", clientID: "c").wait() == ["read:databases", "read:logs"])
        #expect(try store.consent(userID: "usr_1", clientID: "other").wait() == nil)
        try store.revokeConsent(userID: "usr_1", clientID: "c").wait()
        #expect(try store.consent(userID: "usr_1", clientID: "c").wait() == nil)
    }
}

@Suite struct InMemoryBrowserStateStoreTests {
    private let loop = MultiThreadedEventLoopGroup.singleton.next()

    @Test func sessionsAndFlowsExpireAndTouchNeverRevivesADeletedSession() throws {
        let clock = ManualClock(now)
        let data = InMemoryBrowserStateData(clock: clock.clock)
        let store = InMemoryBrowserStateStore(eventLoop: loop, data: data)
        let record = BrowserSessionRecord(
            userID: "usr_1",
            email: "a@example.test",
            createdAt: now,
            lastSeen: now,
            csrfToken: "t"
        )
        try store.createSession(hash: "s", record: record, ttl: 10).wait()
        try store.storeFlow(id: "f", json: "{}", ttl: 5).wait()
        #expect(try store.session(hash: "s").wait() == record)
        #expect(try store.flow(id: "f").wait() == "{}")
        clock.advance(seconds: 5)
        #expect(try store.flow(id: "f").wait() == nil)
        #expect(try store.deleteFlow(id: "f").wait() == false)
        try store.storeFlow(id: "g", json: "{}", ttl: 5).wait()
        #expect(try store.deleteFlow(id: "g").wait() == true)
        #expect(try store.deleteFlow(id: "g").wait() == false)
        try store.touchSession(hash: "s", record: record, ttl: 10).wait()
        clock.advance(seconds: 9)
        #expect(try store.session(hash: "s").wait() == record)
        #expect(try store.deleteSessions(userID: "usr_1").wait() == 1)
        try store.touchSession(hash: "s", record: record, ttl: 10).wait()
        #expect(try store.session(hash: "s").wait() == nil)
    }
}
