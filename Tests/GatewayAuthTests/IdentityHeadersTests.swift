import GatewayCore
import GatewayStore
import GatewayTestSupport
import NIOCore
import Testing

@testable import GatewayAuth

/// The identity fields exactly as the proxy built them on every request before they were
/// kept with the principal: the oracle for the precomputed ones.
private func referenceIdentityFields(_ principal: Principal) -> [String] {
    func safeValue(_ value: String) -> String {
        guard value.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { return value }
        return String(decoding: value.utf8.map { $0 < 0x20 || $0 == 0x7F ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
    }
    var fields = [
        "X-DBAudit-Subject: " + safeValue(principal.subject),
        "X-DBAudit-Scopes: " + safeValue(principal.scopes.joined(separator: " ")),
        "X-DBAudit-Credential: " + principal.kind.rawValue,
    ]
    if let clientID = principal.clientID { fields.append("X-DBAudit-Client-Id: " + safeValue(clientID)) }
    if let keyID = principal.keyID { fields.append("X-DBAudit-Key-Id: " + safeValue(keyID)) }
    if let issuer = principal.issuer { fields.append("X-DBAudit-Issuer: " + safeValue(issuer)) }
    return fields
}

/// The precomputed fields and lines of `principal` agree with the oracle.
private func expectPrecomputed(_ principal: Principal, sourceLocation: SourceLocation = #_sourceLocation) {
    let expected = referenceIdentityFields(principal)
    let identity = principal.identityHeaders
    #expect(identity.fields.map { "\($0.name): \($0.value)" } == expected, sourceLocation: sourceLocation)
    #expect(
        identity.lines == Array(expected.map { $0 + "\r\n" }.joined().utf8),
        sourceLocation: sourceLocation
    )
    // One field per line: no value can end its line early.
    let lineBreaks = identity.lines.filter { $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r") }.count
    #expect(lineBreaks == 2 * identity.fields.count, sourceLocation: sourceLocation)
}

/// Hostile values as a store, a token or an authorization server may hold them.
private let hostileSubject = "usr_1\r\nX-DBAudit-Scopes: admin\u{0}\u{7F}\tÅsa ☃"

/// The principal of every credential kind, as its own authenticator makes it (a cached
/// principal keeps the fields it was made with), carries the identity fields the proxy
/// built per request before.
@Suite struct IdentityHeadersTests {
    @Test func anAPIKeyPrincipal() throws {
        let h = AuthHarness()
        let created = try h.createKey(scopes: ["read:databases", "write:alerts"], owner: "ops team é")
        let principal = try #require(try h.resolve(h.authorize(key: created.key)).get())
        #expect(principal.kind == .apiKey && principal.keyID != nil)
        expectPrecomputed(principal)
        // From this loop's cache: the same fields.
        let cached = try #require(try h.resolve(h.authorize(key: created.key)).get())
        #expect(h.store.apiKeyCalls == 1)
        #expect(cached.identityHeaders == principal.identityHeaders)
        expectPrecomputed(cached)
    }

    @Test func aGatewayJWTPrincipalOfASession() throws {
        let h = try SessionHarness()
        try h.addUser("alice@example.com", password: "s3cret pw", scopes: ["read:databases"])
        let json = try #require(h.login("alice@example.com", "s3cret pw").json)
        let access = try #require(json["access_token"]?.string)
        let principal = try #require(h.verifier.verify(access, now: testNow).verified).principal
        #expect(principal.kind == .jwt && principal.issuer == TokenIssuerTests.ownIssuer)
        expectPrecomputed(principal)
        #expect(principal.identityHeaders.fields.last?.name == "X-DBAudit-Issuer")
    }

    @Test(arguments: [true, false])
    func aJWTPrincipalOfTheGatewayOrAnExternalIssuer(own: Bool) throws {
        let policy = IssuerPolicy(
            issuer: testIssuer,
            audiences: [testAudience],
            requiredType: nil,
            leewaySeconds: 60,
            maxLifetimeSeconds: nil,
            isOwn: own
        )
        let claims = standardClaims([
            "sub": #""usr_1\r\nX-DBAudit-Scopes: admin\u0000\u007f\tÅsa ☃""#,
            "client_id": #""app\nx""#,
        ])
        let token = try validateClaims(claims, type: nil, policy: policy, now: testNow).get()
        #expect(token.principal.subject == hostileSubject)
        #expect(token.principal.issuer == testIssuer)
        expectPrecomputed(token.principal)
        #expect(token.principal.identityHeaders.fields[0].value == "usr_1  X-DBAudit-Scopes: admin   Åsa ☃")
    }

    @Test func anOpaqueOAuthTokenPrincipal() throws {
        let h = AuthHarness(withOpaqueTokens: true)
        let token = "dbaudit_at_" + String(repeating: "A", count: 42) + "w"
        let record = OpaqueAccessTokenRecord(
            clientID: "cid_app",
            subject: hostileSubject,
            scopes: ["read:databases"],
            tokenID: "at-1",
            issuedAt: h.clock.now,
            expiresAt: h.clock.now + 600
        )
        _ = h.opaqueStore.storeOpaqueAccessToken(
            hash: OpaqueAccessTokenFormat.hash(token),
            record: record,
            now: h.clock.now
        )
        let principal = try #require(try h.resolve(h.authorize(key: token)).get())
        #expect(principal.kind == .oauth && principal.subject == hostileSubject && principal.issuer != nil)
        expectPrecomputed(principal)
    }

    @Test func anIntrospectedTokenPrincipal() throws {
        let answer =
            #"{"active":true,"sub":"usr_1\r\nX-DBAudit-Scopes: admin\u0000\u007f\tÅsa ☃","client_id":"reports","#
            + #""scope":"read:databases","iss":"https://as.test\r\n","exp":1700000600}"#
        let poster: HTTPPoster = { _, loop in
            loop.makeSucceededFuture(HTTPFetchResponse(status: 200, cacheControl: nil, body: Array(answer.utf8)))
        }
        let h = AuthHarness(introspectionPoster: poster)
        let principal = try #require(try h.resolve(h.authorize(key: "opaque-token-of-another-server")).get())
        #expect(principal.kind == .oauth && principal.issuedElsewhere && principal.subject == hostileSubject)
        #expect(principal.issuer == "https://as.test\r\n")
        expectPrecomputed(principal)
    }

    /// Every property sent upstream rebuilds the fields when set, in any order, after the
    /// principal was made (as the authenticators set the issuer).
    @Test func settingAPropertyRebuildsTheFields() {
        var principal = Principal(subject: "a", kind: .apiKey, scopes: [], keyID: "key_1")
        expectPrecomputed(principal)
        principal.subject = "b\n"
        expectPrecomputed(principal)
        principal.scopes = ["read:logs", "admin"]
        expectPrecomputed(principal)
        principal.kind = .oauth
        expectPrecomputed(principal)
        principal.clientID = "cid\r"
        expectPrecomputed(principal)
        principal.keyID = nil
        expectPrecomputed(principal)
        principal.issuer = "https://i.example"
        expectPrecomputed(principal)
        principal.issuedElsewhere = true
        principal.expiresAt = 5
        principal.rateLimit = "gold"
        expectPrecomputed(principal)
        #expect(
            principal.identityHeaders.fields.map(\.name) == [
                "X-DBAudit-Subject", "X-DBAudit-Scopes", "X-DBAudit-Credential", "X-DBAudit-Client-Id",
                "X-DBAudit-Issuer",
            ]
        )
    }
}
