import GatewayCore
import GatewayStore
import GatewayTestSupport
import NIOCore
import Testing

@testable import GatewayAuth

/// Issue 18 item 5 on one loop: the access tokens of our own issuer die with their session
/// (`sid`) and with their user (`users disable`), on cache hits as on first sight, and the
/// store is still asked once per token.
@Suite struct JWTSessionRevocationTests {
    @Test func item5AnEndedSessionRefusesEveryCachedTokenOfItOnACacheHit() throws {
        let h = JWTHarness(own: true)
        let first = try h.token(["jti": "\"t-1\"", "sid": "\"fam-1\""])
        let second = try h.token(["jti": "\"t-2\"", "sid": "\"fam-1\""])
        let other = try h.token(["jti": "\"t-3\"", "sid": "\"fam-2\""])
        for token in [first, second, other] { #expect(h.authenticator.check(token).principal != nil) }
        h.authenticator.revoke(sessionID: "fam-1", until: testNow + 600)
        #expect(h.authenticator.check(first).failure == .sessionRevoked)
        #expect(h.authenticator.check(second).failure == .sessionRevoked)
        #expect(h.authenticator.check(other).principal != nil)
        // A token of the session never seen before is refused without the store.
        #expect(h.authenticator.check(try h.token(["jti": "\"t-4\"", "sid": "\"fam-1\""])).failure == .sessionRevoked)
        #expect(JWTFailure.sessionRevoked.description.contains("revoked"))
    }

    @Test func item5AnotherIssuersSidIsNotOurs() throws {
        let h = JWTHarness(own: false)
        let token = try h.token(["jti": "\"t-1\"", "sid": "\"fam-1\""])
        h.authenticator.revoke(sessionID: "fam-1", until: testNow + 600)
        h.authenticator.revoke(userID: "user-1", issuedUpTo: testNow, until: testNow + 600)
        #expect(h.authenticator.check(token).principal != nil)
    }

    @Test func item5AMalformedSidOfOursIsRefused() throws {
        let h = JWTHarness(own: true)
        #expect(h.authenticator.check(try h.token(["sid": "\"a b\""])).failure == .malformed("sid is not a session id"))
        #expect(h.authenticator.check(try h.token(["sid": "7"])).failure == .malformed("sid is not a session id"))
    }

    @Test func item5UserRevocationRefusesTokensIssuedUpToItsTime() throws {
        let h = JWTHarness(own: true)
        let before = try h.token(["jti": "\"t-1\"", "iat": "\(testNow - 10)"])
        let atTheTime = try h.token(["jti": "\"t-2\"", "iat": "\(testNow - 5)"])
        let after = try h.token(["jti": "\"t-3\"", "iat": "\(testNow)"])
        let noIat = try h.token(["jti": "\"t-4\"", "iat": nil])
        let otherUser = try h.token(["jti": "\"t-5\"", "sub": "\"user-2\""])
        for token in [before, atTheTime, after, noIat, otherUser] {
            #expect(h.authenticator.check(token).principal != nil)
        }
        h.authenticator.revoke(userID: "user-1", issuedUpTo: testNow - 5, until: testNow + 600)
        #expect(h.authenticator.check(before).failure == .userRevoked)
        #expect(h.authenticator.check(atTheTime).failure == .userRevoked)
        #expect(h.authenticator.check(noIat).failure == .userRevoked)
        #expect(h.authenticator.check(after).principal != nil)
        #expect(h.authenticator.check(otherUser).principal != nil)
        // An older revocation heard late does not lower the bound.
        h.authenticator.revoke(userID: "user-1", issuedUpTo: testNow - 20, until: testNow + 600)
        #expect(h.authenticator.check(atTheTime).failure == .userRevoked)
    }

    @Test func item5FirstSightAsksTheStoreOnceForJtiSessionAndUser() throws {
        let data = InMemorySessionData()
        let h = JWTHarness(withStore: true, own: true, data: data)
        let sessions = try #require(h.sessions)
        _ = try value(of: sessions.revokeSession("fam-dead", now: testNow), on: h.loop)
        let dead = try h.token(["jti": "\"t-1\"", "sid": "\"fam-dead\""])
        let future = try #require(h.authenticator.check(dead).future)
        #expect(try failure(of: future, on: h.loop) as? JWTFailure == .sessionRevoked)
        #expect(sessions.revocationLookups == 1)
        // Remembered on the loop: a second token of that session is refused without a lookup.
        #expect(
            h.authenticator.check(try h.token(["jti": "\"t-2\"", "sid": "\"fam-dead\""])).failure == .sessionRevoked
        )
        #expect(sessions.revocationLookups == 1)

        // A live session: one lookup, then cache hits.
        let live = try h.token(["jti": "\"t-3\"", "sid": "\"fam-live\""])
        let pending = try #require(h.authenticator.check(live).future)
        #expect(try value(of: pending, on: h.loop).subject == "user-1")
        #expect(h.authenticator.check(live).principal != nil)
        #expect(sessions.revocationLookups == 2)

        // users disable: the store's marker is found on first sight of an older token...
        _ = try value(of: sessions.revokeUserTokens(userID: "user-2", issuedUpTo: testNow, now: testNow), on: h.loop)
        let old = try h.token(["jti": "\"t-4\"", "sub": "\"user-2\""])
        let refused = try #require(h.authenticator.check(old).future)
        #expect(try failure(of: refused, on: h.loop) as? JWTFailure == .userRevoked)
        // ...and remembered: the user's next old token is judged here, a newer one passes the
        // store (which knows only the time).
        #expect(h.authenticator.check(try h.token(["jti": "\"t-5\"", "sub": "\"user-2\""])).failure == .userRevoked)
        let newer = try h.token(["jti": "\"t-6\"", "sub": "\"user-2\"", "iat": "\(testNow + 1)"])
        let allowed = try #require(h.authenticator.check(newer).future)
        #expect(try value(of: allowed, on: h.loop).subject == "user-2")
        // An own token without jti is still asked about its session and user.
        let before = sessions.revocationLookups
        _ = h.authenticator.check(try h.token(["jti": nil, "sid": "\"fam-x\""]))
        #expect(sessions.revocationLookups == before + 1)
    }

    @Test func item5SessionRevocationsAreForgottenOnlyPastTheirTimeAndWhenMany() throws {
        let h = JWTHarness(own: true)
        let token = try h.token(["jti": "\"t-1\"", "sid": "\"fam-1\""])
        #expect(h.authenticator.check(token).principal != nil)
        h.authenticator.revoke(sessionID: "fam-1", until: testNow + 1)
        h.clock.now = testNow + 500
        // Past `until` but few entries: still refused (entries are swept only when many).
        #expect(h.authenticator.check(token).failure == .sessionRevoked)
    }
}
