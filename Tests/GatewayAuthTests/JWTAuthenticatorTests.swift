import GatewayConfig
import GatewayCore
import GatewayCrypto
import GatewayStore
import GatewayTestSupport
import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import GatewayAuth

/// A `SessionStore` over `InMemorySessionStore` that counts deny-list lookups and can fail
/// them like a Redis outage.
final class ScriptedSessionStore: SessionStore {
    let inner: InMemorySessionStore
    var eventLoop: any EventLoop { inner.eventLoop }
    private(set) var revocationLookups = 0
    var lookupFailure: (any Error)?

    init(eventLoop: any EventLoop, data: InMemorySessionData = InMemorySessionData()) {
        self.inner = InMemorySessionStore(eventLoop: eventLoop, data: data)
    }

    func user(email: String) -> EventLoopFuture<UserRecord?> { inner.user(email: email) }
    func user(id: String) -> EventLoopFuture<UserRecord?> { inner.user(id: id) }
    func createUser(_ user: UserRecord) -> EventLoopFuture<Void> { inner.createUser(user) }
    func setUserDisabled(email: String, disabled: Bool) -> EventLoopFuture<UserRecord?> {
        inner.setUserDisabled(email: email, disabled: disabled)
    }
    func updateProviderUser(_ user: UserRecord) -> EventLoopFuture<UserRecord?> { inner.updateProviderUser(user) }
    func storeRefresh(tokenHash: String, grant: RefreshGrant, now: Int64) -> EventLoopFuture<Void> {
        inner.storeRefresh(tokenHash: tokenHash, grant: grant, now: now)
    }
    func rotateRefresh(
        tokenHash: String,
        newTokenHash: String,
        now: Int64,
        graceSeconds: Int64,
        clientID: String?
    ) -> EventLoopFuture<RefreshRotation> {
        inner.rotateRefresh(
            tokenHash: tokenHash,
            newTokenHash: newTokenHash,
            now: now,
            graceSeconds: graceSeconds,
            clientID: clientID
        )
    }
    func recordRotationResult(tokenHash: String, successorHash: String, sealedResult: [UInt8]) -> EventLoopFuture<Void>
    {
        inner.recordRotationResult(tokenHash: tokenHash, successorHash: successorHash, sealedResult: sealedResult)
    }
    func revokeRefreshFamily(tokenHash: String, now: Int64) -> EventLoopFuture<Bool> {
        inner.revokeRefreshFamily(tokenHash: tokenHash, now: now)
    }
    func revokeSession(_ sessionID: String, now: Int64) -> EventLoopFuture<Void> {
        inner.revokeSession(sessionID, now: now)
    }
    func revokeUserTokens(userID: String, issuedUpTo: Int64, now: Int64) -> EventLoopFuture<Void> {
        inner.revokeUserTokens(userID: userID, issuedUpTo: issuedUpTo, now: now)
    }
    func replacePasswordHash(email: String, expectedHash: String, newHash: String) -> EventLoopFuture<Bool> {
        inner.replacePasswordHash(email: email, expectedHash: expectedHash, newHash: newHash)
    }
    func accessTokenDenial(tokenID: String?, sessionID: String?, userID: String?) -> EventLoopFuture<AccessTokenDenial>
    {
        revocationLookups += 1
        if let lookupFailure { return eventLoop.makeFailedFuture(lookupFailure) }
        return inner.accessTokenDenial(tokenID: tokenID, sessionID: sessionID, userID: userID)
    }
    func refreshGrant(tokenHash: String, now: Int64) -> EventLoopFuture<RefreshGrantState?> {
        inner.refreshGrant(tokenHash: tokenHash, now: now)
    }
    func revokeTokenID(_ jti: String, expiresAt: Int64, now: Int64) -> EventLoopFuture<Void> {
        inner.revokeTokenID(jti, expiresAt: expiresAt, now: now)
    }
    func isTokenIDRevoked(_ jti: String) -> EventLoopFuture<Bool> {
        revocationLookups += 1
        if let lookupFailure { return eventLoop.makeFailedFuture(lookupFailure) }
        return inner.isTokenIDRevoked(jti)
    }
}

extension JWTAuthenticator.Check {
    var principal: Principal? {
        if case .valid(let principal) = self { return principal }
        return nil
    }

    var failure: JWTFailure? {
        if case .invalid(let failure) = self { return failure }
        return nil
    }

    var future: EventLoopFuture<Principal>? {
        if case .pending(let future) = self { return future }
        return nil
    }
}

/// A `JWTAuthenticator` for `testIssuer` on an `EmbeddedEventLoop` with a manual clock.
final class JWTHarness {
    let loop = EmbeddedEventLoop()
    let clock = ManualClock(testNow)
    let signer = TestSigner.asymmetric(TestKeys.p256, .es256)
    let verifier: JWTVerifier
    let sessions: ScriptedSessionStore?
    let authenticator: JWTAuthenticator
    var refetchCalls: [(String, String?)] = []
    /// What the refetch hook does; nil result = refused.
    var onRefetch: ((JWTHarness) -> EventLoopFuture<Void>?)?

    /// - Parameter own: `testIssuer` is the gateway's own issuer (its `sid` and user
    ///   revocations apply).
    init(
        withStore: Bool = false,
        leeway: Int64 = 60,
        maximumEntries: Int = 100,
        keys: JSONWebKeySet? = nil,
        own: Bool = false,
        data: InMemorySessionData = InMemorySessionData()
    ) {
        let policy = IssuerPolicy(issuer: testIssuer, audiences: [testAudience], leewaySeconds: leeway, isOwn: own)
        self.verifier = JWTVerifier(
            policies: [policy],
            keySets: [testIssuer: keys ?? JSONWebKeySet(keys: [signer.verificationKey(keyID: "k1")])]
        )
        self.sessions = withStore ? ScriptedSessionStore(eventLoop: loop, data: data) : nil
        let clock = self.clock
        var refetch: UnknownKeyRefetch?
        // The hook is @Sendable; the harness lives on the embedded loop only.
        final class WeakHarness: @unchecked Sendable { weak var value: JWTHarness? }
        let holder = WeakHarness()
        refetch = { issuer, kid, _ in
            guard let harness = holder.value else { return nil }
            harness.refetchCalls.append((issuer, kid))
            return harness.onRefetch?(harness)
        }
        self.authenticator = JWTAuthenticator(
            eventLoop: loop,
            verifier: verifier,
            sessions: sessions,
            refetch: refetch,
            maximumEntries: maximumEntries,
            logger: Logger(label: "test"),
            clock: clock.clock
        )
        holder.value = self
    }

    func token(_ overrides: [String: String?] = [:], kid: String = "k1") throws -> String {
        try makeToken(
            header: "{\"alg\":\"ES256\",\"kid\":\"\(kid)\"}",
            claims: standardClaims(overrides),
            signer: signer
        )
    }

    func removeAllKeys() {
        verifier.replaceKeys(issuer: testIssuer, keys: .empty)
    }

    func resolve(_ check: JWTAuthenticator.Check) -> Result<Principal, any Error>? {
        switch check {
        case .valid(let principal): return .success(principal)
        case .invalid(let failure): return .failure(failure)
        case .pending(let future): return completion(of: future, on: loop)
        }
    }
}

@Suite struct JWTAuthenticatorTests {
    @Test func cacheHitDoesNotVerifyAgain() throws {
        let h = JWTHarness()
        let token = try h.token(["jti": nil])
        #expect(h.authenticator.check(token).principal?.subject == "user-1")
        #expect(h.authenticator.cachedTokens == 1 && h.authenticator.cacheMisses == 1)
        // Without keys a verification would fail: a pass proves the cache answered.
        h.removeAllKeys()
        #expect(h.authenticator.check(token).principal?.subject == "user-1")
        #expect(h.authenticator.cacheHits == 1)
        // A token never seen is verified, and fails.
        #expect(h.authenticator.check(try h.token(["jti": nil, "sub": "\"other\""])).principal == nil)
        // After removeAll the cache is empty.
        h.authenticator.removeAll()
        #expect(h.authenticator.check(token).principal == nil)
    }

    @Test func cacheIsNeverUsedPastExp() throws {
        let h = JWTHarness(leeway: 0)
        let token = try h.token(["jti": nil, "exp": "\(testNow + 100)"])
        #expect(h.authenticator.check(token).principal != nil)
        h.clock.now = testNow + 99
        #expect(h.authenticator.check(token).principal != nil)
        #expect(h.authenticator.cacheHits == 1)
        h.clock.now = testNow + 100
        #expect(h.authenticator.check(token).failure == .expired)
        #expect(h.authenticator.cachedTokens == 0)
    }

    @Test func exactlyAtExpWithLeewayTheAnswerDoesNotFlipFlop() throws {
        let h = JWTHarness(leeway: 60)
        let token = try h.token(["jti": nil, "exp": "\(testNow - 10)"])
        // Within the leeway: the verifier accepts. The same token at the same instant must
        // get the same answer every time.
        let answers = (0..<4).map { _ in h.authenticator.check(token).principal != nil }
        #expect(answers == [true, true, true, true], "\(answers)")
    }

    @Test func revokedJTIIsRefusedOnACacheHit() throws {
        let h = JWTHarness()
        let token = try h.token(["jti": "\"t-1\""])
        #expect(h.authenticator.check(token).principal != nil)
        h.authenticator.revoke(tokenID: "t-1", expiresAt: testNow + 600)
        #expect(h.authenticator.check(token).failure == .revoked)
        // Another token id is unaffected.
        #expect(h.authenticator.check(try h.token(["jti": "\"t-2\""])).principal != nil)
    }

    @Test func denyListIsAskedOnFirstSightOnly() throws {
        let h = JWTHarness(withStore: true)
        let token = try h.token(["jti": "\"t-1\""])
        let first = try #require(h.authenticator.check(token).future)
        #expect(try value(of: first, on: h.loop).subject == "user-1")
        #expect(h.sessions?.revocationLookups == 1)
        #expect(h.authenticator.check(token).principal != nil)
        #expect(h.sessions?.revocationLookups == 1)
        // A token without jti cannot be on the list: no lookup.
        #expect(h.authenticator.check(try h.token(["jti": nil])).principal != nil)
        #expect(h.sessions?.revocationLookups == 1)
    }

    @Test func denyListRevokedIsRefused() throws {
        let h = JWTHarness(withStore: true)
        _ = try value(of: h.sessions!.revokeTokenID("t-9", expiresAt: testNow + 600, now: testNow), on: h.loop)
        let token = try h.token(["jti": "\"t-9\""])
        let future = try #require(h.authenticator.check(token).future)
        #expect(try failure(of: future, on: h.loop) as? JWTFailure == .revoked)
        #expect(h.authenticator.cachedTokens == 0)
        // Remembered on the loop: the next attempt is refused without asking again.
        #expect(h.authenticator.check(token).failure == .revoked)
        #expect(h.sessions?.revocationLookups == 1)
    }

    @Test func denyListUnavailableIsAnErrorThatBecomes503() throws {
        let h = JWTHarness(withStore: true)
        h.sessions?.lookupFailure = CredentialStoreError.unavailable
        let token = try h.token(["jti": "\"t-1\""])
        let future = try #require(h.authenticator.check(token).future)
        let error = try failure(of: future, on: h.loop)
        #expect(!(error is JWTFailure), "\(error)")
        #expect(h.authenticator.cachedTokens == 0)

        // Through the Authenticator: 503, never 200 and never 401.
        let authenticator = Authenticator(
            eventLoop: h.loop,
            store: InMemoryCredentialStore(eventLoop: h.loop, data: InMemoryCredentialData()),
            hmac: HMACSHA256(key: testPepper),
            cache: CacheSettings(),
            logger: Logger(label: "test"),
            clock: h.clock.clock,
            jwt: h.authenticator
        )
        guard
            case .pending(let pending) = authenticator.authorize(
                .readDatabases,
                authorization: ["Bearer \(token)"],
                queryCarriesToken: false
            )
        else {
            Issue.record("expected a pending outcome")
            return
        }
        let mapped = try failure(of: pending, on: h.loop) as? GatewayError
        #expect(mapped?.status == 503 && mapped == GatewayError.authUnavailable)
        // Once the store is back, the token passes.
        h.sessions?.lookupFailure = nil
        let retry = try #require(h.authenticator.check(token).future)
        #expect(try value(of: retry, on: h.loop).subject == "user-1")
    }

    @Test func unknownKidRefetchInstallsTheKeyAndThenPasses() throws {
        let h = JWTHarness(keys: .empty)
        let token = try h.token(["jti": nil], kid: "k1")
        h.onRefetch = { harness in
            harness.verifier.replaceKeys(
                issuer: testIssuer,
                keys: JSONWebKeySet(keys: [harness.signer.verificationKey(keyID: "k1")])
            )
            return harness.loop.makeSucceededVoidFuture()
        }
        let future = try #require(h.authenticator.check(token).future)
        #expect(try value(of: future, on: h.loop).subject == "user-1")
        #expect(h.refetchCalls.count == 1)
        #expect(h.refetchCalls.first?.0 == testIssuer && h.refetchCalls.first?.1 == "k1")
        // Now cached and the key known: no more refetches.
        #expect(h.authenticator.check(token).principal != nil)
        #expect(h.authenticator.check(try h.token(["jti": nil, "sub": "\"u2\""])).principal != nil)
        #expect(h.refetchCalls.count == 1)
    }

    @Test func refetchThatDoesNotBringTheKeyFailsOnce() throws {
        let h = JWTHarness(keys: .empty)
        h.onRefetch = { $0.loop.makeSucceededVoidFuture() }
        let future = try #require(h.authenticator.check(try h.token(kid: "nope")).future)
        #expect(try failure(of: future, on: h.loop) as? JWTFailure == .unknownKey)
        #expect(h.refetchCalls.count == 1)
    }

    @Test func refusedOrFailedRefetch() throws {
        let h = JWTHarness(keys: .empty)
        h.onRefetch = { _ in nil }
        #expect(h.authenticator.check(try h.token(kid: "a")).failure == .unknownKey)
        #expect(h.refetchCalls.count == 1)
        // The provider is down: the hook fails; the loop backs off for a second. A key it does
        // not know cannot be judged meanwhile: 503 (an outage), never the token's own 401.
        struct Down: Error {}
        h.onRefetch = { $0.loop.makeFailedFuture(Down()) }
        let future = try #require(h.authenticator.check(try h.token(kid: "b")).future)
        #expect(try failure(of: future, on: h.loop) as? GatewayError == .authUnavailable)
        #expect(h.refetchCalls.count == 2)
        let duringBackoff = try #require(h.authenticator.check(try h.token(kid: "c")).future)
        #expect(try failure(of: duringBackoff, on: h.loop) as? GatewayError == .authUnavailable)
        #expect(h.refetchCalls.count == 2)
        // The back-off runs on the monotonic view of the clock, not on whole wall seconds.
        h.clock.advance(by: .milliseconds(999))
        let stillDown = try #require(h.authenticator.check(try h.token(kid: "c2")).future)
        #expect(try failure(of: stillDown, on: h.loop) as? GatewayError == .authUnavailable)
        #expect(h.refetchCalls.count == 2)
        h.clock.advance(by: .milliseconds(1))
        // The provider answers again, without that key: now the token's own 401.
        h.onRefetch = { $0.loop.makeSucceededVoidFuture() }
        let answered = try #require(h.authenticator.check(try h.token(kid: "d")).future)
        #expect(try failure(of: answered, on: h.loop) as? JWTFailure == .unknownKey)
        #expect(h.refetchCalls.count == 3)
        h.onRefetch = { _ in nil }
        #expect(h.authenticator.check(try h.token(kid: "e")).failure == .unknownKey)
    }

    @Test func aRefetchRefusedByTheRateCapIsAnOutageOnlyWhenTheLastFetchFailed() throws {
        let h = JWTHarness(keys: .empty)
        h.onRefetch = { $0.loop.makeFailedFuture(JWKSRefresher.RefetchRefused(providerUnreachable: false)) }
        let answered = try #require(h.authenticator.check(try h.token(kid: "a")).future)
        #expect(try failure(of: answered, on: h.loop) as? JWTFailure == .unknownKey)
        h.clock.advance(by: .seconds(1))
        h.onRefetch = { $0.loop.makeFailedFuture(JWKSRefresher.RefetchRefused(providerUnreachable: true)) }
        let down = try #require(h.authenticator.check(try h.token(kid: "b")).future)
        #expect(try failure(of: down, on: h.loop) as? GatewayError == .authUnavailable)
    }

    @Test func cacheIsBounded() throws {
        let h = JWTHarness(maximumEntries: 3)
        let tokens = try (0..<10).map { try h.token(["jti": nil, "sub": "\"u\($0)\""]) }
        for token in tokens {
            #expect(h.authenticator.check(token).principal != nil)
            #expect(h.authenticator.cachedTokens <= 3)
        }
        #expect(h.authenticator.cachedTokens == 3)
        h.removeAllKeys()
        // The newest are still cached, the oldest were evicted.
        #expect(h.authenticator.check(tokens[9]).principal?.subject == "u9")
        #expect(h.authenticator.check(tokens[0]).principal == nil)
        // A cache of size 0 remembers nothing.
        let none = JWTHarness(maximumEntries: 0)
        let token = try none.token(["jti": nil])
        #expect(none.authenticator.check(token).principal != nil)
        #expect(none.authenticator.cachedTokens == 0)
    }

    @Test func invalidTokensAreNotCached() throws {
        let h = JWTHarness()
        let token = try h.token(["aud": "\"someone-else\""])
        #expect(h.authenticator.check(token).failure == .wrongAudience)
        #expect(h.authenticator.cachedTokens == 0)
    }
}

@Suite struct JWTKeyWithdrawalTests {
    /// A key the issuer withdraws stops vouching for the tokens it signed at once, even
    /// for tokens this loop had already verified and cached.
    @Test func installingASetWithoutTheKeyEvictsItsCachedTokens() throws {
        let h = JWTHarness()
        let token = try h.token(["jti": nil])
        #expect(h.authenticator.check(token).principal != nil)
        // Still cached with the key in place.
        h.authenticator.installKeys(
            issuer: testIssuer,
            keys: JSONWebKeySet(keys: [h.signer.verificationKey(keyID: "k1")])
        )
        #expect(h.authenticator.cachedTokens == 1)
        // The issuer withdraws k1.
        h.authenticator.installKeys(issuer: testIssuer, keys: .empty)
        #expect(h.authenticator.cachedTokens == 0)
        #expect(h.authenticator.check(token).principal == nil)
    }
}
