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

/// Login, refresh, logout and JWKS on an `EmbeddedEventLoop`, with scrypt run inline.
final class SessionHarness {
    static let cost = 10
    let loop = EmbeddedEventLoop()
    let data = InMemorySessionData()
    let store: InMemorySessionStore
    let clock = ManualClock(testNow)
    let issuer: TokenIssuer
    let verifier: JWTVerifier
    var locallyRevoked: [(String, Int64)] = []
    var locallyEndedSessions: [String] = []
    var endpoints: SessionEndpoints!

    init(perAddress: Int = 100, perAccount: Int = 100) throws {
        self.store = InMemorySessionStore(eventLoop: loop, data: data)
        self.issuer = try TokenIssuerTests.issuer([("k1", .es256, TestKeys.p256)], active: "k1")
        self.verifier = JWTVerifier(
            policies: [issuer.policy(leewaySeconds: 0, maxLifetimeSeconds: 86400)],
            keySets: [TokenIssuerTests.ownIssuer: issuer.verificationKeys]
        )
        let clock = self.clock
        let verifier = self.verifier
        self.endpoints = SessionEndpoints(
            issuer: issuer,
            sessions: store,
            throttle: LocalLoginThrottle(
                eventLoop: loop,
                perAddress: perAddress,
                perAccount: perAccount,
                window: .seconds(60),
                clock: clock.clock
            ),
            checkPassword: { password, encoded, loop in
                loop.makeSucceededFuture(PasswordHasher.verify(password: password, encoded: encoded))
            },
            rehashPassword: { password, cost, loop in
                loop.makeCompletedFuture { try PasswordHasher.hash(password: password, cost: cost) }
            },
            passwordCost: Self.cost,
            decoyHash: PasswordHasher.decoy(cost: Self.cost),
            logger: Logger(label: "test"),
            clock: clock.clock,
            revokeLocally: { [weak self] id, exp in self?.locallyRevoked.append((id, exp)) },
            revokeSessionLocally: { [weak self] id, _ in self?.locallyEndedSessions.append(id) },
            verifyOwnToken: { token in verifier.verify(token, now: clock.now).verified }
        )
    }

    func addUser(
        _ email: String,
        password: String,
        scopes: [String] = ["read:databases"],
        disabled: Bool = false,
        cost: Int = SessionHarness.cost
    ) throws {
        let user = UserRecord(
            id: "id-\(email)",
            email: email,
            scopes: scopes,
            passwordHash: try PasswordHasher.hash(password: password, cost: cost),
            disabled: disabled,
            createdAt: testNow
        )
        try value(of: store.createUser(user), on: loop)
    }

    func call(
        _ path: String,
        method: String = "POST",
        body: String,
        authorization: [String] = [],
        address: String = "192.0.2.1"
    )
        -> Result<SessionEndpoints.Response, any Error>
    {
        let future = endpoints.handle(
            method: method,
            normalizedPath: path,
            body: Array(body.utf8),
            authorization: authorization,
            clientAddress: address,
            eventLoop: loop
        )
        return completion(of: future, on: loop) ?? .failure(StillPending())
    }

    struct StillPending: Error {}

    func login(
        _ email: String,
        _ password: String,
        address: String = "192.0.2.1"
    ) -> Result<SessionEndpoints.Response, any Error> {
        call(SessionEndpoints.loginPath, body: #"{"email":"\#(email)","password":"\#(password)"}"#, address: address)
    }

    func refresh(_ token: String) -> Result<SessionEndpoints.Response, any Error> {
        call(SessionEndpoints.refreshPath, body: #"{"refresh_token":"\#(token)"}"#)
    }
}

extension Result where Success == SessionEndpoints.Response {
    var json: JSONObject? {
        guard case .success(let response) = self else { return nil }
        return try? StrictJSON.parseObject(Array(response.body.utf8))
    }

    var gatewayError: GatewayError? {
        if case .failure(let error as GatewayError) = self { return error }
        return nil
    }
}

@Suite struct SessionEndpointsTests {
    @Test func loginReturnsTokens() throws {
        let h = try SessionHarness()
        try h.addUser("alice@example.com", password: "s3cret pw", scopes: ["read:databases", "write:reports"])
        let result = h.login("Alice@Example.com ", "s3cret pw")
        guard case .success(let response) = result else {
            Issue.record("login failed: \(result)")
            return
        }
        #expect(response.status == 200)
        #expect(response.headers.contains(GatewayError.HeaderField("Pragma", "no-cache")))
        let json = try #require(result.json)
        #expect(json.names == ["access_token", "refresh_token", "expires_in", "token_type", "scope"])
        #expect(json["expires_in"] == .integer(3600))
        #expect(json["token_type"]?.string == "Bearer")
        #expect(json["scope"]?.string == "read:databases write:reports")
        let refresh = try #require(json["refresh_token"]?.string)
        #expect(refresh.hasPrefix("dbaudit_rt_") && refresh.utf8.count <= 128)
        let access = try #require(json["access_token"]?.string)
        let verified = try #require(h.verifier.verify(access, now: testNow).verified)
        #expect(verified.principal.subject == "id-alice@example.com")
        #expect(verified.principal.scopes == ["read:databases", "write:reports"])
        #expect(verified.expiresAt == testNow + 3600)
        // Only the hash of the refresh token is stored.
        #expect(
            try value(of: h.store.rotateRefresh(tokenHash: refresh, newTokenHash: "x", now: testNow), on: h.loop)
                == .invalid
        )
    }

    @Test func unknownEmailWrongPasswordAndDisabledUserLookAlike() throws {
        let h = try SessionHarness()
        try h.addUser("alice@example.com", password: "s3cret pw")
        try h.addUser("bob@example.com", password: "s3cret pw", disabled: true)
        let errors = [
            h.login("nobody@example.com", "s3cret pw").gatewayError,
            h.login("alice@example.com", "wrong").gatewayError,
            h.login("bob@example.com", "s3cret pw").gatewayError,
            h.login("alice@example.com", "").gatewayError,
        ]
        for error in errors {
            let error = try #require(error)
            #expect(error.status == 401)
            #expect(error.jsonBody(requestID: "r") == errors[0]!.jsonBody(requestID: "r"))
            #expect(error.headers == errors[0]!.headers)
            #expect(error == errors[0]!)
        }
        #expect(errors[0]?.code == "invalid_credentials")
    }

    @Test func malformedLoginBodiesAre400() throws {
        let h = try SessionHarness()
        for body in [
            "", "{", #"{"email":"a@b.c"}"#, #"{"email":1,"password":"x"}"#,
            #"{"email":"a","email":"b","password":"x"}"#, "[]",
        ] {
            let error = h.call(SessionEndpoints.loginPath, body: body).gatewayError
            #expect(error?.status == 400, "\(body): \(String(describing: error))")
        }
        #expect(h.call(SessionEndpoints.loginPath, method: "GET", body: "").gatewayError?.status == 405)
    }

    @Test func refreshRotatesAndReuseRevokesTheFamily() throws {
        let h = try SessionHarness()
        try h.addUser("alice@example.com", password: "pw")
        let first = try #require(h.login("alice@example.com", "pw").json?["refresh_token"]?.string)
        h.clock.now += 10
        let rotated = h.refresh(first)
        let second = try #require(rotated.json?["refresh_token"]?.string)
        #expect(second != first)
        let access = try #require(rotated.json?["access_token"]?.string)
        #expect(h.verifier.verify(access, now: h.clock.now).verified?.expiresAt == h.clock.now + 3600)
        // The new one works once more...
        let third = try #require(h.refresh(second).json?["refresh_token"]?.string)
        // ...the first, already spent, is reuse: 401 and the whole family dies.
        let reuse = h.refresh(first).gatewayError
        #expect(reuse?.status == 401 && reuse?.code == "invalid_grant")
        #expect(h.refresh(third).gatewayError?.code == "invalid_grant")
        // A fresh login starts a new family that works.
        let fresh = try #require(h.login("alice@example.com", "pw").json?["refresh_token"]?.string)
        #expect(h.refresh(fresh).json != nil)
    }

    @Test func refreshWithGarbage() throws {
        let h = try SessionHarness()
        #expect(h.refresh("dbaudit_rt_unknown").gatewayError?.code == "invalid_grant")
        #expect(h.refresh("not-a-refresh-token").gatewayError?.code == "invalid_grant")
        #expect(h.call(SessionEndpoints.refreshPath, body: "{}").gatewayError?.status == 400)
    }

    @Test func refreshForADisabledUserFails() throws {
        let h = try SessionHarness()
        try h.addUser("alice@example.com", password: "pw")
        let token = try #require(h.login("alice@example.com", "pw").json?["refresh_token"]?.string)
        _ = try value(of: h.store.setUserDisabled(email: "alice@example.com", disabled: true), on: h.loop)
        #expect(h.refresh(token).gatewayError?.code == "invalid_grant")
    }

    @Test func logoutRevokesTheAccessTokenID() throws {
        let h = try SessionHarness()
        try h.addUser("alice@example.com", password: "pw")
        let login = try #require(h.login("alice@example.com", "pw").json)
        let access = try #require(login["access_token"]?.string)
        let jti = try #require(h.verifier.verify(access, now: testNow).verified?.tokenID)
        let result = h.call(SessionEndpoints.logoutPath, body: "", authorization: ["Bearer \(access)"])
        #expect(result.json?["logged_out"] == .bool(true))
        #expect(h.locallyRevoked.map(\.0) == [jti])
        #expect(h.locallyRevoked.first?.1 == testNow + 3600)
        #expect(try value(of: h.store.isTokenIDRevoked(jti), on: h.loop))
    }

    @Test func logoutRevokesTheRefreshFamily() throws {
        let h = try SessionHarness()
        try h.addUser("alice@example.com", password: "pw")
        let refresh = try #require(h.login("alice@example.com", "pw").json?["refresh_token"]?.string)
        let result = h.call(SessionEndpoints.logoutPath, body: #"{"refresh_token":"\#(refresh)"}"#)
        #expect(result.json?["logged_out"] == .bool(true))
        #expect(h.refresh(refresh).gatewayError?.code == "invalid_grant")
        // Nothing to log out: 400.
        #expect(h.call(SessionEndpoints.logoutPath, body: "").gatewayError?.status == 400)
    }

    @Test func throttleGives429WithRetryAfter() throws {
        let h = try SessionHarness(perAddress: 100, perAccount: 2)
        try h.addUser("alice@example.com", password: "pw")
        #expect(h.login("alice@example.com", "bad").gatewayError?.status == 401)
        #expect(h.login("alice@example.com", "bad").gatewayError?.status == 401)
        let limited = try #require(h.login("alice@example.com", "pw").gatewayError)
        #expect(limited.status == 429)
        let retryAfter = try #require(limited.header("Retry-After").flatMap(Int.init))
        #expect((1...60).contains(retryAfter))
        // Another account from the same address is not affected.
        #expect(h.login("bob@example.com", "pw").gatewayError?.status == 401)
    }

    @Test func jwksEndpointServesThePublicKeys() throws {
        let h = try SessionHarness()
        guard case .success(let response) = h.call(SessionEndpoints.jwksPath, method: "GET", body: "") else {
            Issue.record("no JWKS")
            return
        }
        #expect(response.status == 200 && response.body == h.issuer.jwksDocument)
        #expect(try JSONWebKeySet.parse(Array(response.body.utf8), allowSymmetric: false).keys.count == 1)
        #expect(h.call(SessionEndpoints.jwksPath, method: "POST", body: "").gatewayError?.status == 405)
    }
}
