import Foundation
import GatewayAuth
import GatewayConfig
import GatewayCrypto
import GatewayPages
import Testing

/// The pure parts of the relying party: ID token checks, claim mapping, the sign-in state,
/// the user key and the discovery document.
@Suite struct SSOTests {
    static let rsa: AsymmetricKey = try! AsymmetricKey.generate(.rsa(bits: 2048))
    static let otherRSA: AsymmetricKey = try! AsymmetricKey.generate(.rsa(bits: 2048))
    static let now: Int64 = 1_800_000_000

    static var provider: SSOProviderSettings {
        var provider = SSOProviderSettings(
            name: "corp",
            displayName: "Corp",
            issuer: "https://idp.example.com",
            clientID: "gw",
            clientSecret: Secret("s")
        )
        provider.allowedDomains = ["example.com"]
        provider.scopeRules = [
            SSOScopeRule(claim: "groups", value: "dba", scopes: ["read:databases"]),
            SSOScopeRule(claim: "role", value: "auditor", scopes: ["read:logs"]),
        ]
        return provider
    }

    static var keys: JSONWebKeySet {
        JSONWebKeySet(keys: [VerificationKey(keyID: "k1", algorithm: .rs256, material: .asymmetric(rsa))])
    }

    static func token(
        _ claims: [String: Any],
        key: AsymmetricKey = rsa,
        alg: String = "RS256",
        kid: String = "k1"
    ) throws -> String {
        let header = try JSONSerialization.data(withJSONObject: ["alg": alg, "kid": kid, "typ": "JWT"])
        let payload = try JSONSerialization.data(withJSONObject: claims)
        let input = Base64URL.encode(Array(header)) + "." + Base64URL.encode(Array(payload))
        let signature = try key.sign(.rs256, message: Array(input.utf8))
        return input + "." + Base64URL.encode(signature)
    }

    static func claims(_ overrides: [String: Any?] = [:]) -> [String: Any] {
        var claims: [String: Any] = [
            "iss": "https://idp.example.com", "aud": "gw", "sub": "u-1", "iat": now - 10, "exp": now + 300,
            "nonce": "n-1",
        ]
        for (name, value) in overrides { claims[name] = value }
        return claims
    }

    func verify(_ token: String, nonce: String = "n-1") -> Result<JSONObject, SSOIDTokenCheck.Failure> {
        SSOIDTokenCheck.verify(token, keys: Self.keys, provider: Self.provider, nonce: nonce, now: Self.now)
    }

    func isInvalid(
        _ result: Result<JSONObject, SSOIDTokenCheck.Failure>,
        _ text: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        guard case .failure(.invalid(let why)) = result else {
            Issue.record("expected a refusal, got \(result)", sourceLocation: sourceLocation)
            return
        }
        #expect(why.contains(text), "\(why)", sourceLocation: sourceLocation)
    }

    // MARK: ID token

    @Test func aValidIDTokenVerifies() throws {
        guard case .success(let claims) = verify(try Self.token(Self.claims())) else {
            Issue.record("refused")
            return
        }
        #expect(claims["sub"]?.string == "u-1")
    }

    @Test func wrongNonceIsRefused() throws {
        isInvalid(verify(try Self.token(Self.claims()), nonce: "n-2"), "nonce")
        isInvalid(verify(try Self.token(Self.claims(["nonce": nil]))), "nonce")
    }

    @Test func unknownKeyAsksForARefetch() throws {
        let result = verify(try Self.token(Self.claims(), key: Self.otherRSA, kid: "k2"))
        #expect(result.failureValue == .unknownKey)
    }

    @Test func aKnownKidWithAnotherKeysSignatureIsRefused() throws {
        isInvalid(verify(try Self.token(Self.claims(), key: Self.otherRSA)), "signature")
    }

    @Test func expiredWrongAudienceWrongIssuerAndFutureIatAreRefused() throws {
        isInvalid(verify(try Self.token(Self.claims(["exp": Self.now - 120]))), "expired")
        isInvalid(verify(try Self.token(Self.claims(["aud": "other"]))), "audience")
        isInvalid(verify(try Self.token(Self.claims(["iss": "https://evil.example.com"]))), "issuer")
        isInvalid(verify(try Self.token(Self.claims(["iat": Self.now + 3600]))), "future")
        isInvalid(verify(try Self.token(Self.claims(["iat": nil]))), "iat")
    }

    @Test func azpMustBeOursAndIsRequiredWithSeveralAudiences() throws {
        isInvalid(verify(try Self.token(Self.claims(["aud": ["gw", "other"], "azp": "other"]))), "azp")
        isInvalid(verify(try Self.token(Self.claims(["aud": ["gw", "other"]]))), "azp")
        isInvalid(verify(try Self.token(Self.claims(["azp": "other"]))), "azp")
        #expect(verify(try Self.token(Self.claims(["aud": ["gw", "other"], "azp": "gw"]))).isSuccess)
    }

    @Test func algorithmsOutsideTheAllowListAreRefused() throws {
        var provider = Self.provider
        provider.algorithms = ["ES256"]
        let result = SSOIDTokenCheck.verify(
            try Self.token(Self.claims()),
            keys: Self.keys,
            provider: provider,
            nonce: "n-1",
            now: Self.now
        )
        isInvalid(result, "algorithm")
    }

    // MARK: claims -> user

    static func object(_ json: String) throws -> JSONObject { try StrictJSON.parseObject(Array(json.utf8)) }

    @Test func groupsAndRolesMapToScopes() throws {
        let both = try Self.object(
            #"{"sub":"u","email":"A@Example.com","email_verified":true,"groups":["dba","x"],"role":"auditor"}"#
        )
        #expect(
            SSOClaimMapping.map(claims: both, provider: Self.provider)
                == .success(.init(subject: "u", email: "a@example.com", scopes: ["read:databases", "read:logs"]))
        )
        let one = try Self.object(
            #"{"sub":"u","email":"a@example.com","email_verified":true,"groups":["x"],"role":"auditor"}"#
        )
        #expect(SSOClaimMapping.map(claims: one, provider: Self.provider).successValue?.scopes == ["read:logs"])
    }

    @Test func defaultScopesAloneAreEnoughAndNoScopeIsARefusal() throws {
        let none = try Self.object(#"{"sub":"u","email":"a@example.com","email_verified":true,"groups":["marketing"]}"#)
        #expect(SSOClaimMapping.map(claims: none, provider: Self.provider) == .failure(.noScopes))
        var provider = Self.provider
        provider.defaultScopes = ["read:reports"]
        #expect(SSOClaimMapping.map(claims: none, provider: provider).successValue?.scopes == ["read:reports"])
    }

    @Test func unverifiedEmailIsRefusedUnlessConfigured() throws {
        let unverified = try Self.object(
            #"{"sub":"u","email":"a@example.com","email_verified":false,"groups":["dba"]}"#
        )
        let missing = try Self.object(#"{"sub":"u","email":"a@example.com","groups":["dba"]}"#)
        #expect(SSOClaimMapping.map(claims: unverified, provider: Self.provider) == .failure(.emailNotVerified))
        #expect(SSOClaimMapping.map(claims: missing, provider: Self.provider) == .failure(.emailNotVerified))
        var provider = Self.provider
        provider.requireEmailVerified = false
        #expect(SSOClaimMapping.map(claims: missing, provider: provider).isSuccess)
    }

    @Test func domainsOutsideTheListAreRefused() throws {
        let outside = try Self.object(
            #"{"sub":"u","email":"a@example.com.evil.org","email_verified":true,"groups":["dba"]}"#
        )
        #expect(
            SSOClaimMapping.map(claims: outside, provider: Self.provider)
                == .failure(.domainNotAllowed("example.com.evil.org"))
        )
        let sub = try Self.object(#"{"sub":"u","email":"a@sub.example.com","email_verified":true,"groups":["dba"]}"#)
        #expect(
            SSOClaimMapping.map(claims: sub, provider: Self.provider) == .failure(.domainNotAllowed("sub.example.com"))
        )
    }

    @Test func theEmailClaimIsConfigurable() throws {
        var provider = Self.provider
        provider.emailClaim = "upn"
        let claims = try Self.object(
            #"{"sub":"u","upn":"b@example.com","email":"x@evil.org","email_verified":true,"groups":["dba"]}"#
        )
        #expect(SSOClaimMapping.map(claims: claims, provider: provider).successValue?.email == "b@example.com")
    }

    // MARK: user key, state, discovery

    @Test func theUserKeyIsProviderAndSubjectNeverTheEmail() {
        let a = SSOUserKey.key(provider: "one", subject: "same")
        let b = SSOUserKey.key(provider: "two", subject: "same")
        #expect(a != b)
        #expect(a.hasSuffix("@one.sso.invalid") && b.hasSuffix("@two.sso.invalid"))
        #expect(SSOUserKey.key(provider: "one", subject: "other") != a)
        #expect(!a.contains("same"))
    }

    @Test func theStateIsBoundToItsBrowserAndExpires() {
        let browser = PageRandom.token()
        let state = SSOLoginState(
            provider: "corp",
            nonce: "n",
            codeVerifier: "v",
            browserHash: PageRandom.hash(browser),
            flow: nil,
            next: "/settings/api-keys",
            createdAt: 1000
        )
        #expect(state.check(browser: browser, now: 1000 + 599) == nil)
        #expect(state.check(browser: PageRandom.token(), now: 1001) == .otherBrowser)
        #expect(state.check(browser: nil, now: 1001) == .otherBrowser)
        #expect(state.check(browser: browser, now: 1000 + 601) == .expired)
        #expect(SSOLoginState.decode(state.json()!) == state)
        // The stored id is a hash of the state: the state itself is never stored.
        #expect(SSOLoginState.storeID(state: "abc") == "sso." + PageRandom.hash("abc"))
    }

    @Test func thePKCEChallengeIsS256() {
        // RFC 7636 Appendix B.
        #expect(
            SSOLoginState.challenge(verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
                == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        )
    }

    @Test func discoveryMustNameTheIssuerAndSafeEndpoints() {
        let good =
            #"{"issuer":"https://idp.example.com","authorization_endpoint":"https://idp.example.com/auth","token_endpoint":"https://idp.example.com/token"}"#
        #expect(
            SSODiscovery.parse(Array(good.utf8), provider: Self.provider).successValue?.tokenEndpoint
                == "https://idp.example.com/token"
        )
        let otherIssuer = good.replacingOccurrences(
            of: #""issuer":"https://idp.example.com""#,
            with: #""issuer":"https://evil.example.com""#
        )
        #expect(SSODiscovery.parse(Array(otherIssuer.utf8), provider: Self.provider).successValue == nil)
        let plainToken = good.replacingOccurrences(of: "https://idp.example.com/token", with: "http://127.0.0.1/token")
        #expect(SSODiscovery.parse(Array(plainToken.utf8), provider: Self.provider).successValue == nil)
        #expect(SSODiscovery.parse(Array("[]".utf8), provider: Self.provider).successValue == nil)
    }
}

extension Result {
    var isSuccess: Bool { if case .success = self { true } else { false } }
    var successValue: Success? { if case .success(let value) = self { value } else { nil } }
    var failureValue: Failure? { if case .failure(let value) = self { value } else { nil } }
}
