import GatewayConfig
import GatewayCore
import GatewayCrypto
import Testing

@testable import GatewayAuth

/// Our own issuer: sign with generated keys, verify with `JWTVerifier`, and re-import the
/// published JWKS.
@Suite struct TokenIssuerTests {
    static let ownIssuer = "https://gateway.example.com"

    static func issuer(
        _ keys: [(String, SignatureAlgorithm, AsymmetricKey)],
        active: String,
        ttl: Int64 = 3600
    ) throws -> TokenIssuer {
        try TokenIssuer(
            issuer: ownIssuer,
            audience: testAudience,
            accessTokenTTL: ttl,
            refreshTokenTTL: 86400,
            keys: keys.map { TokenIssuer.SigningKey(keyID: $0.0, algorithm: $0.1, key: $0.2) },
            activeKeyID: active
        )
    }

    static let algorithms: [(SignatureAlgorithm, AsymmetricKey)] = [
        (.rs256, TestKeys.rsa), (.es256, TestKeys.p256), (.edDSA, TestKeys.ed25519),
    ]

    @Test(arguments: [SignatureAlgorithm.rs256, .es256, .edDSA])
    func accessTokenRoundTrip(algorithm: SignatureAlgorithm) throws {
        let key = Self.algorithms.first { $0.0 == algorithm }!.1
        let issuer = try Self.issuer([("k-\(algorithm.rawValue)", algorithm, key)], active: "k-\(algorithm.rawValue)")
        let minted = try issuer.accessToken(
            subject: "u-42",
            scopes: ["read:databases", "admin"],
            clientID: "cli",
            now: testNow
        )
        #expect(minted.expiresAt == testNow + 3600)

        let jws = try JWSCompact.parse(minted.token.utf8)
        #expect(jws.algorithm == algorithm && jws.keyID == "k-\(algorithm.rawValue)" && jws.type == "at+jwt")
        let claims = try StrictJSON.parseObject(jws.payload)
        #expect(claims.names == ["iss", "sub", "aud", "iat", "nbf", "exp", "jti", "scope", "client_id"])
        #expect(claims["jti"]?.string == minted.tokenID)

        let policy = issuer.policy(leewaySeconds: 0, maxLifetimeSeconds: 3600)
        let verifier = JWTVerifier(policies: [policy], keySets: [Self.ownIssuer: issuer.verificationKeys])
        let verified = try #require(verifier.verify(minted.token, now: testNow).verified)
        #expect(verified.principal.subject == "u-42")
        #expect(verified.principal.scopes == ["read:databases", "admin"])
        #expect(verified.principal.clientID == "cli")
        #expect(verified.tokenID == minted.tokenID && verified.expiresAt == testNow + 3600)
        #expect(verifier.verify(minted.token, now: testNow + 3600).failure == .expired)

        // The published JWKS, parsed as any relying party would, verifies the token too.
        let published = try JSONWebKeySet.parse(Array(issuer.jwksDocument.utf8), allowSymmetric: false)
        #expect(published.problems.isEmpty)
        #expect(published.keys.count == 1 && published.keys[0].algorithm == algorithm)
        let relying = JWTVerifier(policies: [policy], keySets: [Self.ownIssuer: published])
        #expect(relying.verify(minted.token, now: testNow).verified?.principal.subject == "u-42")
    }

    /// A user or refresh grant read from Redis is hostile until parsed: scopes that are not
    /// scope tokens are never signed into one of our tokens (they would reach the upstream).
    @Test(arguments: [["read:databases", "x admin"], ["read:databases x\tadmin"], ["read:databases,admin"], [""]])
    func scopesThatAreNotScopeTokensAreNotSigned(scopes: [String]) throws {
        let issuer = try Self.issuer([("k", .es256, TestKeys.p256)], active: "k")
        #expect(throws: (any Error).self) { try issuer.accessToken(subject: "u", scopes: scopes, now: testNow) }
    }

    @Test func jwksDocumentShape() throws {
        let issuer = try Self.issuer(
            [("r", .rs256, TestKeys.rsa), ("e", .es256, TestKeys.p256), ("o", .edDSA, TestKeys.ed25519)],
            active: "e"
        )
        let document = try StrictJSON.parseObject(Array(issuer.jwksDocument.utf8))
        let list = document["keys"]?.array ?? []
        let keys = list.compactMap { $0.object }
        #expect(keys.count == 3)
        let private_ = ["d", "p", "q", "dp", "dq", "qi"]
        for key in keys {
            #expect(!key.names.contains(where: private_.contains), "\(key.names)")
            #expect(key["use"]?.string == "sig")
        }
        #expect(keys[0]["kty"]?.string == "RSA" && keys[0]["alg"]?.string == "RS256" && keys[0]["e"]?.string == "AQAB")
        #expect(Base64URL.decode(keys[0]["n"]!.string!)?.count == 256)
        #expect(keys[1]["kty"]?.string == "EC" && keys[1]["crv"]?.string == "P-256")
        #expect(
            Base64URL.decode(keys[1]["x"]!.string!)?.count == 32 && Base64URL.decode(keys[1]["y"]!.string!)?.count == 32
        )
        #expect(
            keys[2]["kty"]?.string == "OKP" && keys[2]["crv"]?.string == "Ed25519" && keys[2]["alg"]?.string == "EdDSA"
        )
        // publicParameters re-imported key by key.
        let ec = TestKeys.p256.publicParameters
        let reimported = try AsymmetricKey.ecPublicKey(curve: "P-256", x: ec["x"]!, y: ec["y"]!)
        let signature = try TestKeys.p256.sign(.es256, message: Array("m".utf8))
        #expect(reimported.verify(.es256, signature: signature, message: Array("m".utf8)))
        let rsa = TestKeys.rsa.publicParameters
        let rsaImported = try AsymmetricKey.rsaPublicKey(modulus: rsa["n"]!, exponent: rsa["e"]!)
        #expect(rsaImported.verify(.rs256, signature: try TestKeys.rsa.sign(.rs256, message: [1]), message: [1]))
        let ed = try AsymmetricKey.ed25519PublicKey(TestKeys.ed25519.publicParameters["x"]!)
        #expect(ed.verify(.edDSA, signature: try TestKeys.ed25519.sign(.edDSA, message: [2]), message: [2]))
    }

    @Test func rotationKeepsPreviousKeysVerifying() throws {
        let old = try Self.issuer([("old", .rs256, TestKeys.rsa)], active: "old")
        let oldToken = try old.accessToken(subject: "u", scopes: [], now: testNow).token
        let rotated = try Self.issuer([("old", .rs256, TestKeys.rsa), ("new", .es256, TestKeys.p256)], active: "new")
        let newToken = try rotated.accessToken(subject: "u", scopes: [], now: testNow).token
        #expect(try JWSCompact.parse(newToken.utf8).keyID == "new")
        let verifier = JWTVerifier(
            policies: [rotated.policy(leewaySeconds: 0, maxLifetimeSeconds: 86400)],
            keySets: [Self.ownIssuer: rotated.verificationKeys]
        )
        #expect(verifier.verify(oldToken, now: testNow + 1).verified != nil)
        #expect(verifier.verify(newToken, now: testNow + 1).verified != nil)
    }

    @Test func ownTokensNeedTheAccessTokenType() throws {
        let issuer = try Self.issuer([("k", .es256, TestKeys.p256)], active: "k")
        // A token signed by our key but typed as a plain JWT (an ID token, say) is refused.
        let claims = standardClaims(["iss": "\"\(Self.ownIssuer)\""])
        let token = try makeToken(
            header: #"{"alg":"ES256","kid":"k","typ":"JWT"}"#,
            claims: claims,
            signer: .asymmetric(TestKeys.p256, .es256)
        )
        let verifier = JWTVerifier(
            policies: [issuer.policy(leewaySeconds: 0, maxLifetimeSeconds: 86400)],
            keySets: [Self.ownIssuer: issuer.verificationKeys]
        )
        #expect(verifier.verify(token, now: testNow).failure == .wrongType)
        let typed = try makeToken(
            header: #"{"alg":"ES256","kid":"k","typ":"at+jwt"}"#,
            claims: claims,
            signer: .asymmetric(TestKeys.p256, .es256)
        )
        #expect(verifier.verify(typed, now: testNow).verified != nil)
    }

    @Test func unknownActiveKeyIsRefused() {
        #expect(throws: CryptoKeyError.self) { try Self.issuer([("a", .rs256, TestKeys.rsa)], active: "b") }
    }

    /// Scopes cannot hold `"` or `\` any more (they are refused above); the subject can.
    @Test func subjectIsJSONEscapedAndScopesAreSpaceJoined() throws {
        let issuer = try Self.issuer([("k", .edDSA, TestKeys.ed25519)], active: "k")
        let minted = try issuer.accessToken(subject: "a\"b\\c\u{1}", scopes: ["x/y", "{z}"], now: testNow)
        let claims = try StrictJSON.parseObject(try JWSCompact.parse(minted.token.utf8).payload)
        #expect(claims["sub"]?.string == "a\"b\\c\u{1}")
        #expect(claims["scope"]?.string == "x/y {z}")
    }
}
