import Foundation
import GatewayCore
import Testing

@testable import GatewayAuth
@testable import GatewayCrypto

/// RFC 7515 A.1–A.3 and RFC 8037 A.4 through the gateway's parsers and verifier, and the
/// algorithm-confusion attacks: the key pins the algorithm, never the token.
@Suite struct JWTVerifierTests {
    private static let joePolicy = IssuerPolicy(issuer: "joe", audiences: [], leewaySeconds: 0)
    private static let today = Int64(Date().timeIntervalSince1970)

    // MARK: RFC vectors: signatures

    @Test func rfc7515A1HS256SignatureVerifies() throws {
        let key = try parseJWK(RFCVectors.a1JWK, allowSymmetric: true)
        #expect(key.algorithm == .hs256)
        let jws = try JWSCompact.parse(RFCVectors.a1Token.utf8)
        #expect(jws.algorithm == .hs256 && jws.type == "JWT" && jws.keyID == nil)
        #expect(jws.verify(with: [key]))
        // One flipped bit of the MAC fails.
        var tampered = jws.signature
        tampered[0] ^= 1
        #expect(!key.verify(signingInput: jws.signingInput, signature: tampered))
        // The same secret is refused where only public keys belong (a fetched JWKS).
        #expect(throws: JSONWebKeyError.self) { try parseJWK(RFCVectors.a1JWK, allowSymmetric: false) }
    }

    @Test func rfc7515A2RS256SignatureVerifies() throws {
        let key = try parseJWK(RFCVectors.a2JWK)
        #expect(key.algorithm == .rs256 && key.keyID == "2011-04-29")
        let jws = try JWSCompact.parse(RFCVectors.a2Token.utf8)
        #expect(jws.algorithm == .rs256)
        #expect(jws.verify(with: [key]))
        // Straight through AsymmetricKey as well.
        let raw = try AsymmetricKey.rsaPublicKey(
            modulus: try #require(Base64URL.decode(RFCVectors.a2Modulus)),
            exponent: [1, 0, 1]
        )
        #expect(raw.kind == .rsa(bits: 2048))
        #expect(raw.verify(.rs256, signature: jws.signature, message: jws.signingInput))
        #expect(!raw.verify(.rs384, signature: jws.signature, message: jws.signingInput))
        #expect(!raw.verify(.ps256, signature: jws.signature, message: jws.signingInput))
    }

    @Test func rfc7515A3ES256SignatureVerifies() throws {
        let key = try parseJWK(RFCVectors.a3JWK)
        #expect(key.algorithm == .es256)
        let jws = try JWSCompact.parse(RFCVectors.a3Token.utf8)
        #expect(jws.signature.count == 64)
        #expect(jws.verify(with: [key]))
        // The same r||s as DER is refused (JWS needs the raw form).
        let der = try #require(AsymmetricKey.derSignature(rawRS: jws.signature, scalarBytes: 32))
        #expect(!key.verify(signingInput: jws.signingInput, signature: der))
    }

    @Test func rfc8037A4Ed25519SignatureVerifiesWithTheA2PublicKey() throws {
        let key = try parseJWK(RFCVectors.ed25519JWK)
        #expect(key.algorithm == .edDSA)
        let jws = try JWSCompact.parse(RFCVectors.ed25519Token.utf8)
        #expect(jws.algorithm == .edDSA)
        #expect(jws.payload == Array("Example of Ed25519 signing".utf8))
        #expect(jws.verify(with: [key]))
        var tampered = jws.signature
        tampered[63] ^= 0x80
        #expect(!key.verify(signingInput: jws.signingInput, signature: tampered))
    }

    // MARK: RFC vectors: claims in 2011 and today

    private static func rfcCases() throws -> [(name: String, token: String, key: VerificationKey)] {
        [
            ("A.1", RFCVectors.a1Token, try parseJWK(RFCVectors.a1JWK, allowSymmetric: true)),
            (
                "A.2", RFCVectors.a2Token,
                try parseJWK(RFCVectors.a2JWK.replacingOccurrences(of: "\"kid\":\"2011-04-29\",", with: ""))
            ),
            ("A.3", RFCVectors.a3Token, try parseJWK(RFCVectors.a3JWK)),
        ]
    }

    @Test func rfcTokensIn2011LackOnlyTheSubject() throws {
        for (name, token, key) in try Self.rfcCases() {
            let jws = try JWSCompact.parse(token.utf8)
            let claims = try StrictJSON.parseObject(jws.payload)
            #expect(claims.names == ["iss", "exp", "http://example.com/is_root"], "\(name)")
            // The validator alone: only `sub` is missing.
            #expect(throws: JWTFailure.missingClaim("sub"), "\(name)") {
                try JWTClaimsValidator.validate(
                    claims: claims,
                    type: jws.type,
                    policy: Self.joePolicy,
                    now: RFCVectors.validAt
                )
            }
            // The verifier: signature first, then the claims.
            let verifier = JWTVerifier(policies: [Self.joePolicy], keySets: ["joe": JSONWebKeySet(keys: [key])])
            #expect(verifier.verify(token, now: RFCVectors.validAt).failure == .missingClaim("sub"), "\(name)")
            // One second before exp is still fine, at exp it is expired (leeway 0).
            #expect(verifier.verify(token, now: RFCVectors.exp - 1).failure == .missingClaim("sub"), "\(name)")
            #expect(verifier.verify(token, now: RFCVectors.exp).failure == .expired, "\(name)")
        }
    }

    /// RFC 7515 A.1-A.3 with the clock injected to 2011: accepted by an issuer policy that
    /// does not demand `sub` (`require_subject = false`), the principal being the issuer.
    @Test func rfcTokensAreAcceptedIn2011WhenSubIsNotRequired() throws {
        for (name, token, key) in try Self.rfcCases() {
            var policy = Self.joePolicy
            policy.requiresSubject = false
            let verifier = JWTVerifier(policies: [policy], keySets: ["joe": JSONWebKeySet(keys: [key])])
            guard case .verified(let verified) = verifier.verify(token, now: RFCVectors.validAt) else {
                Issue.record("\(name) was not accepted in 2011: \(verifier.verify(token, now: RFCVectors.validAt))")
                continue
            }
            #expect(verified.principal.subject == "joe", "\(name)")
            #expect(verified.expiresAt == RFCVectors.exp, "\(name)")
            #expect(verifier.verify(token, now: RFCVectors.exp).failure == .expired, "\(name)")
        }
    }

    @Test func rfcTokensAreExpiredToday() throws {
        for (name, token, key) in try Self.rfcCases() {
            var policy = Self.joePolicy
            policy.leewaySeconds = 60
            let verifier = JWTVerifier(policies: [policy], keySets: ["joe": JSONWebKeySet(keys: [key])])
            #expect(verifier.verify(token, now: Self.today).failure == .expired, "\(name)")
        }
    }

    @Test func rfcTokenWithAnotherIssuerConfiguredIsUnknownIssuer() throws {
        let (_, token, key) = try Self.rfcCases()[1]
        let verifier = JWTVerifier(
            policies: [IssuerPolicy(issuer: "bob", audiences: [])],
            keySets: ["bob": JSONWebKeySet(keys: [key])]
        )
        #expect(verifier.verify(token, now: RFCVectors.validAt).failure == .unknownIssuer)
    }

    // MARK: algorithm confusion

    /// An RS256 issuer whose JWKS was fetched (no symmetric keys allowed there).
    private static func rsaIssuer(extraKeys: [VerificationKey] = []) -> (JWTVerifier, AsymmetricKey) {
        let key = TestKeys.rsa
        let policy = IssuerPolicy(issuer: testIssuer, audiences: [testAudience])
        let set = JSONWebKeySet(
            keys: [VerificationKey(keyID: "k1", algorithm: .rs256, material: .asymmetric(key))] + extraKeys
        )
        return (JWTVerifier(policies: [policy], keySets: [testIssuer: set]), key)
    }

    private static func publicKeyPEM(_ key: AsymmetricKey) -> [UInt8] {
        // The bytes an attacker would use: the JWK members as published (n, e) and a PEM-ish
        // encoding of them. Whatever the exact bytes, the HMAC must never be checked.
        let parameters = key.publicParameters
        let text =
            "-----BEGIN PUBLIC KEY-----\n"
            + Data(parameters["n"]! + parameters["e"]!).base64EncodedString(options: .lineLength64Characters)
            + "\n-----END PUBLIC KEY-----\n"
        return Array(text.utf8)
    }

    @Test func rsaPublicKeyAsHMACSecretIsRefused() throws {
        let (verifier, key) = Self.rsaIssuer()
        let secret = Self.publicKeyPEM(key)
        for kid: String? in ["k1", nil, "other"] {
            let token = try makeToken(
                header: rs256Header(kid: kid, alg: "HS256"),
                claims: standardClaims(),
                signer: .hmac(secret, .hs256)
            )
            let result = verifier.verify(token, now: testNow)
            #expect(result.failure == .unsupportedAlgorithm, "kid \(String(describing: kid)): \(result)")
        }
    }

    @Test func rsaPublicKeyAsHMACSecretIsRefusedEvenWithAnHMACKeyUnderAnotherKid() throws {
        let hmac = VerificationKey(
            keyID: "sym",
            algorithm: .hs256,
            material: .symmetric(SymmetricSecret(TestKeys.hmacSecret))
        )
        let (verifier, key) = Self.rsaIssuer(extraKeys: [hmac])
        let secret = Self.publicKeyPEM(key)
        let pointed = try makeToken(
            header: rs256Header(kid: "k1", alg: "HS256"),
            claims: standardClaims(),
            signer: .hmac(secret, .hs256)
        )
        #expect(verifier.verify(pointed, now: testNow).failure == .unsupportedAlgorithm)
        // Without a kid the only HS256 candidate is the configured secret: bad signature.
        let bare = try makeToken(
            header: rs256Header(kid: nil, alg: "HS256"),
            claims: standardClaims(),
            signer: .hmac(secret, .hs256)
        )
        #expect(verifier.verify(bare, now: testNow).failure == .badSignature)
        // Under the symmetric key's kid: bad signature as well.
        let sym = try makeToken(
            header: rs256Header(kid: "sym", alg: "HS256"),
            claims: standardClaims(),
            signer: .hmac(secret, .hs256)
        )
        #expect(verifier.verify(sym, now: testNow).failure == .badSignature)
        // The real secret does verify (so the failures above are about the key, not the setup).
        let genuine = try makeToken(
            header: rs256Header(kid: "sym", alg: "HS256"),
            claims: standardClaims(),
            signer: .hmac(TestKeys.hmacSecret, .hs256)
        )
        #expect(verifier.verify(genuine, now: testNow).verified?.principal.subject == "user-1")
    }

    @Test func es256TokenAgainstRS256PinnedKeyIsRefused() throws {
        let (verifier, _) = Self.rsaIssuer()
        let signer = TestSigner.asymmetric(TestKeys.p256, .es256)
        let named = try makeToken(
            header: rs256Header(kid: "k1", alg: "ES256"),
            claims: standardClaims(),
            signer: signer
        )
        #expect(verifier.verify(named, now: testNow).failure == .unsupportedAlgorithm)
        // Without kid nothing is pinned to ES256: never verified (the refresher may look for a new key).
        let bare = try makeToken(header: rs256Header(kid: nil, alg: "ES256"), claims: standardClaims(), signer: signer)
        let result = verifier.verify(bare, now: testNow)
        #expect(result.verified == nil)
        #expect(result.isUnknownKey || result.failure == .unsupportedAlgorithm)
    }

    @Test func kidMatchingButAlgDifferentIsUnsupportedAlgorithm() throws {
        let (verifier, key) = Self.rsaIssuer()
        // A genuine RSA signature, but PS256/RS512 while the key is pinned to RS256.
        for algorithm in [SignatureAlgorithm.ps256, .rs512, .rs384] {
            let token = try makeToken(
                header: rs256Header(kid: "k1", alg: algorithm.rawValue),
                claims: standardClaims(),
                signer: .asymmetric(key, algorithm)
            )
            #expect(verifier.verify(token, now: testNow).failure == .unsupportedAlgorithm, "\(algorithm)")
        }
        let good = try makeToken(
            header: rs256Header(kid: "k1"),
            claims: standardClaims(),
            signer: .asymmetric(key, .rs256)
        )
        #expect(verifier.verify(good, now: testNow).verified != nil)
    }

    @Test func tokenWithoutKidAgainstAMultiKeySet() throws {
        let first = TestSigner.asymmetric(TestKeys.rsa, .rs256)
        let second = TestSigner.asymmetric(TestKeys.rsa2, .rs256)
        let stranger = TestSigner.asymmetric(try AsymmetricKey.generate(.rsa(bits: 2048)), .rs256)
        let set = JSONWebKeySet(keys: [first.verificationKey(keyID: "a"), second.verificationKey(keyID: "b")])
        let verifier = JWTVerifier(
            policies: [IssuerPolicy(issuer: testIssuer, audiences: [testAudience])],
            keySets: [testIssuer: set]
        )
        // Every key pinned to the algorithm is tried.
        for signer in [first, second] {
            let token = try makeToken(header: rs256Header(kid: nil), claims: standardClaims(), signer: signer)
            #expect(verifier.verify(token, now: testNow).verified?.principal.subject == "user-1")
        }
        let forged = try makeToken(header: rs256Header(kid: nil), claims: standardClaims(), signer: stranger)
        #expect(verifier.verify(forged, now: testNow).failure == .badSignature)
        // A kid that names the other key does not fall back to trying every key.
        let misnamed = try makeToken(header: rs256Header(kid: "a"), claims: standardClaims(), signer: second)
        #expect(verifier.verify(misnamed, now: testNow).failure == .badSignature)
        // An unknown kid asks for a refetch.
        let unknown = try makeToken(header: rs256Header(kid: "c"), claims: standardClaims(), signer: first)
        #expect(verifier.verify(unknown, now: testNow).isUnknownKey)
    }

    @Test func allowedAlgorithmsRestrictTheKeys() throws {
        var policy = IssuerPolicy(issuer: testIssuer, audiences: [testAudience])
        policy.allowedAlgorithms = [.es256]
        let signer = TestSigner.asymmetric(TestKeys.rsa, .rs256)
        let verifier = JWTVerifier(
            policies: [policy],
            keySets: [testIssuer: JSONWebKeySet(keys: [signer.verificationKey(keyID: "k1")])]
        )
        let token = try makeToken(header: rs256Header(), claims: standardClaims(), signer: signer)
        #expect(verifier.verify(token, now: testNow).failure == .unsupportedAlgorithm)
    }

    @Test func algNoneIsRefusedBeforeAnyKeyLookup() throws {
        let (verifier, _) = Self.rsaIssuer()
        for alg in ["none", "None", "NONE", "nOnE"] {
            let token = b64("{\"alg\":\"\(alg)\",\"kid\":\"k1\"}") + "." + b64(standardClaims()) + "."
            #expect(verifier.verify(token, now: testNow).failure == .unsupportedAlgorithm, "\(alg)")
        }
    }

    @Test func forgedClaimsUnderAGoodHeaderFailTheSignature() throws {
        let (verifier, key) = Self.rsaIssuer()
        let token = try makeToken(header: rs256Header(), claims: standardClaims(), signer: .asymmetric(key, .rs256))
        let parts = token.split(separator: ".").map(String.init)
        let forged = parts[0] + "." + b64(standardClaims(["scope": "\"admin\""])) + "." + parts[2]
        #expect(verifier.verify(forged, now: testNow).failure == .badSignature)
    }

    @Test func issuerIsComparedWithoutUnicodeNormalisation() throws {
        // RFC 7519 §2 StringOrURI: compared with no transformations or canonicalisation.
        let composed = "https://caf\u{E9}.example"
        let decomposed = "https://cafe\u{301}.example"
        let signer = TestSigner.asymmetric(TestKeys.p256, .es256)
        let policy = IssuerPolicy(issuer: composed, audiences: [])
        let verifier = JWTVerifier(
            policies: [policy],
            keySets: [composed: JSONWebKeySet(keys: [signer.verificationKey(keyID: "k1")])]
        )
        let claims = standardClaims(["iss": "\"\(decomposed)\""])
        let token = try makeToken(header: rs256Header(alg: "ES256"), claims: claims, signer: signer)
        #expect(verifier.verify(token, now: testNow).failure == .unknownIssuer)
    }
}
