import GatewayCore
import GatewayStore
import GatewayTestSupport
import NIOCore
import Testing

@testable import GatewayAuth

/// Issue 18 items 5 and 6 at the endpoints: every access token of a login carries the same
/// `sid` (its refresh family, a different one per login); logout by access token ends that
/// session; reuse ends it too; a successful login upgrades a stale scrypt hash.
@Suite struct SessionEndAndRehashTests {
    private func sid(_ h: SessionHarness, _ response: Result<SessionEndpoints.Response, any Error>) throws -> String {
        let access = try #require(response.json?["access_token"]?.string)
        return try #require(h.verifier.verify(access, now: testNow).verified?.sessionID)
    }

    private func denial(_ h: SessionHarness, _ sid: String) throws -> AccessTokenDenial {
        try value(of: h.store.accessTokenDenial(tokenID: nil, sessionID: sid, userID: nil), on: h.loop)
    }

    @Test func item5EveryAccessTokenOfALoginCarriesItsSessionAndLogoutEndsIt() throws {
        let h = try SessionHarness()
        try h.addUser("alice@example.com", password: "pw")
        let login = h.login("alice@example.com", "pw")
        let session = try sid(h, login)
        let refreshed = h.refresh(try #require(login.json?["refresh_token"]?.string))
        #expect(try sid(h, refreshed) == session)
        let again = h.refresh(try #require(refreshed.json?["refresh_token"]?.string))
        #expect(try sid(h, again) == session)
        let other = h.login("alice@example.com", "pw")
        #expect(try sid(h, other) != session)

        // Logout with the (first) access token only: the session ends, here and in the store.
        let access = try #require(login.json?["access_token"]?.string)
        let result = h.call(SessionEndpoints.logoutPath, body: "", authorization: ["Bearer \(access)"])
        #expect(result.json?["logged_out"] == .bool(true))
        #expect(h.locallyEndedSessions == [session])
        #expect(try denial(h, session).sessionRevoked)
        #expect(try denial(h, try sid(h, other)).sessionRevoked == false)
        // Its refresh token, too, is dead: the session is over, not just one token.
        #expect(h.refresh(try #require(again.json?["refresh_token"]?.string)).gatewayError?.code == "invalid_grant")
        #expect(h.refresh(try #require(other.json?["refresh_token"]?.string)).json != nil)
    }

    @Test func item5RefreshTokenReuseEndsTheSession() throws {
        let h = try SessionHarness()
        try h.addUser("alice@example.com", password: "pw")
        let login = h.login("alice@example.com", "pw")
        let session = try sid(h, login)
        let first = try #require(login.json?["refresh_token"]?.string)
        #expect(h.refresh(first).json != nil)
        #expect(try denial(h, session).sessionRevoked == false)
        #expect(h.refresh(first).gatewayError?.code == "invalid_grant")
        #expect(try denial(h, session).sessionRevoked)
    }

    @Test func item6ALoginUpgradesAStaleHashAndOnlyAfterTheRightPassword() throws {
        let h = try SessionHarness()
        try h.addUser("old@example.com", password: "pw", cost: SessionHarness.cost + 1)
        let stale = try #require(try value(of: h.store.user(email: "old@example.com"), on: h.loop)?.passwordHash)
        #expect(stale.hasPrefix("scrypt$ln=11,r=8,p=1$"))
        #expect(PasswordHasher.needsRehash(stale, cost: SessionHarness.cost))
        // A wrong password changes nothing.
        #expect(h.login("old@example.com", "wrong").gatewayError?.code == "invalid_credentials")
        #expect(try value(of: h.store.user(email: "old@example.com"), on: h.loop)?.passwordHash == stale)
        // The right one: the record now carries the current cost, and the password still works.
        #expect(h.login("old@example.com", "pw").json != nil)
        let upgraded = try #require(try value(of: h.store.user(email: "old@example.com"), on: h.loop)?.passwordHash)
        #expect(upgraded.hasPrefix("scrypt$ln=10,r=8,p=1$"))
        #expect(!PasswordHasher.needsRehash(upgraded, cost: SessionHarness.cost))
        #expect(h.login("old@example.com", "pw").json != nil)
        #expect(try value(of: h.store.user(email: "old@example.com"), on: h.loop)?.passwordHash == upgraded)
    }

    @Test func item6OtherBlockSizeOrParallelismIsStaleToo() throws {
        let current = try PasswordHasher.hash(password: "pw", cost: 10)
        #expect(!PasswordHasher.needsRehash(current, cost: 10))
        #expect(PasswordHasher.needsRehash(current, cost: 12))
        let salt = current.split(separator: "$")[2]
        let digest = current.split(separator: "$")[3]
        #expect(PasswordHasher.needsRehash("scrypt$ln=10,r=4,p=1$\(salt)$\(digest)", cost: 10))
        #expect(PasswordHasher.needsRehash("scrypt$ln=10,r=8,p=2$\(salt)$\(digest)", cost: 10))
        // Unreadable hashes are not "stale": they never verify, so there is nothing to upgrade.
        #expect(!PasswordHasher.needsRehash("scrypt$ln=5,r=8,p=1$\(salt)$\(digest)", cost: 10))
    }
}
