import GatewayCore
import Testing

@testable import GatewayAuth

/// `JWTClaimsValidator` at an injected time: required and optional registered claims, the
/// leeway edges, audience forms, `typ`, lifetime, scopes.
@Suite struct JWTClaimsTests {
    private static func policy(
        audiences: [String] = [testAudience],
        type: String? = nil,
        leeway: Int64 = 60,
        maxLifetime: Int64? = nil
    ) -> IssuerPolicy {
        IssuerPolicy(
            issuer: testIssuer,
            audiences: audiences,
            requiredType: type,
            leewaySeconds: leeway,
            maxLifetimeSeconds: maxLifetime
        )
    }

    private func check(
        _ overrides: [String: String?],
        policy: IssuerPolicy = policy(),
        type: String? = nil,
        now: Int64 = testNow
    )
        -> Result<VerifiedToken, JWTFailure>
    {
        validateClaims(standardClaims(overrides), type: type, policy: policy, now: now)
    }

    @Test func standardClaimsAreValid() throws {
        let token = try #require(check([:]).value)
        #expect(token.principal.subject == "user-1")
        #expect(token.principal.kind == .jwt)
        #expect(token.principal.scopes == ["read:databases", "write:databases"])
        #expect(token.expiresAt == testNow + 600 && token.principal.expiresAt == testNow + 600)
        #expect(token.tokenID == "id-1" && token.issuer == testIssuer)
    }

    // MARK: exp, nbf, iat

    @Test func expIsRequired() {
        #expect(check(["exp": nil]).jwtFailure == .missingClaim("exp"))
        #expect(check(["exp": nil], policy: Self.policy(leeway: 600)).jwtFailure == .missingClaim("exp"))
    }

    @Test func expLeewayEdge() {
        let exp = testNow + 600
        let policy = Self.policy(leeway: 30)
        // now < exp + leeway: valid at exp + 29, expired at exp + 30.
        #expect(check([:], policy: policy, now: exp + 29).value != nil)
        #expect(check([:], policy: policy, now: exp + 30).jwtFailure == .expired)
        let strict = Self.policy(leeway: 0)
        #expect(check([:], policy: strict, now: exp - 1).value != nil)
        #expect(check([:], policy: strict, now: exp).jwtFailure == .expired)
    }

    @Test func nbfLeewayEdge() {
        let nbf = testNow + 100
        let policy = Self.policy(leeway: 30)
        let claims: [String: String?] = ["nbf": "\(nbf)", "iat": nil]
        #expect(check(claims, policy: policy, now: nbf - 30).value != nil)
        #expect(check(claims, policy: policy, now: nbf - 31).jwtFailure == .notYetValid)
        let strict = Self.policy(leeway: 0)
        #expect(check(claims, policy: strict, now: nbf).value != nil)
        #expect(check(claims, policy: strict, now: nbf - 1).jwtFailure == .notYetValid)
    }

    @Test func iatLeewayEdge() {
        let iat = testNow + 100
        let policy = Self.policy(leeway: 30)
        let claims: [String: String?] = ["iat": "\(iat)", "nbf": nil]
        #expect(check(claims, policy: policy, now: iat - 30).value != nil)
        #expect(check(claims, policy: policy, now: iat - 31).jwtFailure == .issuedInFuture)
    }

    @Test func nonNumericDatesAreMalformed() {
        for (claim, value) in [
            ("exp", "\"1800000600\""), ("exp", "true"), ("exp", "null"), ("nbf", "\"0\""), ("iat", "[1]"),
            ("exp", "{}"),
        ] {
            let failure = check([claim: value]).jwtFailure
            #expect(isMalformed(failure), "\(claim)=\(value): \(String(describing: failure))")
        }
    }

    @Test func floatNumericDates() {
        // Fractions are allowed (RFC 7519 NumericDate); compared by their integral part.
        #expect(
            check(["exp": "\(testNow + 600).75", "iat": "\(testNow - 10).5", "nbf": "1.8e9"]).value?.expiresAt
                == testNow + 600
        )
        #expect(check(["exp": "\(testNow).999"], policy: Self.policy(leeway: 0)).jwtFailure == .expired)
        #expect(check(["exp": "\(testNow + 1).0"], policy: Self.policy(leeway: 0)).value != nil)
        // An exponent form of a date far in the past.
        #expect(check(["exp": "1.3e9"]).jwtFailure == .expired)
    }

    @Test func hugeNumbers() {
        // Beyond Int64 (parsed as a Double that is out of NumericDate range): malformed.
        #expect(isMalformed(check(["exp": "1e30"]).jwtFailure))
        #expect(isMalformed(check(["exp": "99999999999999999999999"]).jwtFailure))
        #expect(isMalformed(check(["nbf": "-1e300"]).jwtFailure))
        // Out of Double range: the JSON itself is refused.
        #expect(isMalformed(check(["exp": "1e400"]).jwtFailure))
        // A far-future exp is bounded by the maximum lifetime.
        let bounded = Self.policy(maxLifetime: 86400)
        #expect(check(["exp": "4102444800"], policy: bounded).jwtFailure == .lifetimeTooLong)
        #expect(check(["exp": "9223372036854775000", "iat": nil], policy: bounded).jwtFailure == .lifetimeTooLong)
    }

    @Test func expNearInt64MaxIsNotReportedExpired() {
        // No lifetime bound: a token that expires in the year 292 billion is not expired.
        let outcome = check(["exp": "9223372036854775807"], policy: Self.policy(leeway: 60))
        #expect(outcome.value != nil, "\(outcome)")
    }

    @Test func maxLifetimeCannotBeBypassedWithAHugeNegativeIat() {
        let bounded = Self.policy(maxLifetime: 86400)
        let exp = testNow + 10 * 365 * 86400
        // Sanity: a ten-year token is refused.
        #expect(check(["exp": "\(exp)"], policy: bounded).jwtFailure == .lifetimeTooLong)
        #expect(check(["exp": "\(exp)", "iat": "0"], policy: bounded).jwtFailure == .lifetimeTooLong)
        // exp - iat overflows Int64 and wraps negative.
        let outcome = check(["exp": "\(exp)", "iat": "-9223372036854775808"], policy: bounded)
        #expect(outcome.jwtFailure == .lifetimeTooLong, "\(outcome)")
    }

    @Test func maxLifetimeEdge() {
        let policy = Self.policy(maxLifetime: 3600)
        #expect(check(["iat": "\(testNow)", "exp": "\(testNow + 3600)"], policy: policy).value != nil)
        #expect(
            check(["iat": "\(testNow)", "exp": "\(testNow + 3601)"], policy: policy).jwtFailure == .lifetimeTooLong
        )
        // Without iat the remaining lifetime counts.
        #expect(check(["iat": nil, "exp": "\(testNow + 3600)"], policy: policy).value != nil)
        #expect(check(["iat": nil, "exp": "\(testNow + 3601)"], policy: policy).jwtFailure == .lifetimeTooLong)
    }

    // MARK: aud

    @Test func audienceForms() {
        #expect(check(["aud": "\"\(testAudience)\""]).value != nil)
        #expect(check(["aud": "[\"other\",\"\(testAudience)\"]"]).value != nil)
        #expect(check(["aud": "\"other\""]).jwtFailure == .wrongAudience)
        #expect(check(["aud": "[\"other\"]"]).jwtFailure == .wrongAudience)
        #expect(check(["aud": "[]"]).jwtFailure == .wrongAudience)
        #expect(check(["aud": nil]).jwtFailure == .missingClaim("aud"))
        #expect(isMalformed(check(["aud": "[\"\(testAudience)\",1]"]).jwtFailure))
        #expect(isMalformed(check(["aud": "42"]).jwtFailure))
        #expect(isMalformed(check(["aud": "{\"a\":\"\(testAudience)\"}"]).jwtFailure))
        // Case matters.
        #expect(check(["aud": "\"DBAUDIT-API\""]).jwtFailure == .wrongAudience)
        // Without configured audiences aud is not checked at all.
        #expect(check(["aud": nil], policy: Self.policy(audiences: [])).value != nil)
        // Several configured audiences: one is enough.
        #expect(check(["aud": "\"b\""], policy: Self.policy(audiences: ["a", "b"])).value != nil)
    }

    // MARK: typ

    @Test func typeWhenRequired() {
        let policy = Self.policy(type: "at+jwt")
        #expect(check([:], policy: policy, type: "at+jwt").value != nil)
        #expect(check([:], policy: policy, type: "application/at+jwt").value != nil)
        #expect(check([:], policy: policy, type: "AT+JWT").value != nil)
        #expect(check([:], policy: policy, type: "Application/At+Jwt").value != nil)
        #expect(check([:], policy: policy, type: "JWT").jwtFailure == .wrongType)
        #expect(check([:], policy: policy, type: "application/jwt").jwtFailure == .wrongType)
        #expect(check([:], policy: policy, type: "at+jwt ").jwtFailure == .wrongType)
        #expect(check([:], policy: policy, type: "application/application/at+jwt").jwtFailure == .wrongType)
        #expect(check([:], policy: policy, type: nil).jwtFailure == .wrongType)
        // Not required: anything goes.
        #expect(check([:], type: "JWT").value != nil)
        #expect(check([:], type: nil).value != nil)
    }

    // MARK: iss, sub

    @Test func issuerAndSubject() {
        #expect(check(["iss": "\"https://evil.example.com\""]).jwtFailure == .unknownIssuer)
        #expect(check(["iss": nil]).jwtFailure == .unknownIssuer)
        #expect(check(["iss": "[\"\(testIssuer)\"]"]).jwtFailure == .unknownIssuer)
        #expect(check(["sub": nil]).jwtFailure == .missingClaim("sub"))
        #expect(check(["sub": "\"\""]).jwtFailure == .missingClaim("sub"))
        #expect(check(["sub": "42"]).jwtFailure == .missingClaim("sub"))
        #expect(check(["sub": "\"\(String(repeating: "s", count: 257))\""]).jwtFailure == .missingClaim("sub"))
        #expect(check(["sub": "\"\(String(repeating: "s", count: 256))\""]).value != nil)
    }

    // MARK: scopes

    @Test func scopeAndScp() {
        #expect(check(["scope": "\"a  b c \""]).value?.principal.scopes == ["a", "b", "c"])
        #expect(check(["scope": nil, "scp": "[\"a\",\"b\"]"]).value?.principal.scopes == ["a", "b"])
        #expect(check(["scope": nil, "scp": "\"a b\""]).value?.principal.scopes == ["a", "b"])
        #expect(check(["scope": nil]).value?.principal.scopes == [])
        #expect(check(["scope": "\"\""]).value?.principal.scopes == [])
        // Both present: the union (scope first).
        #expect(check(["scope": "\"a\"", "scp": "[\"b\"]"]).value?.principal.scopes == ["a", "b"])
        // Wrong types are malformed, never silently ignored.
        #expect(isMalformed(check(["scope": "[\"a\"]"]).jwtFailure))
        #expect(isMalformed(check(["scope": "1"]).jwtFailure))
        #expect(isMalformed(check(["scope": nil, "scp": "[\"a\",1]"]).jwtFailure))
        #expect(isMalformed(check(["scope": nil, "scp": "{}"]).jwtFailure))
        #expect(isMalformed(check(["scope": nil, "scp": "true"]).jwtFailure))
        // Bounded.
        let many = (0..<65).map { "s\($0)" }.joined(separator: " ")
        #expect(isMalformed(check(["scope": "\"\(many)\""]).jwtFailure))
        #expect(isMalformed(check(["scope": "\"\(String(repeating: "x", count: 129))\""]).jwtFailure))
    }

    /// Only RFC 6749 scope tokens pass: a tab, a space inside an `scp` element, a comma,
    /// a quote or a backslash would reach the upstream inside `X-DBAudit-Scopes`, so the
    /// whole token is refused (401 invalid_token), never partly admitted.
    @Test(
        arguments: [
            ["scope": "\"read:databases x\\tadmin\""],
            ["scope": "\"read:databases,admin\""],
            ["scope": "\"read:databases \\\"admin\""],
            ["scope": "\"read:databases a\\\\b\""],
            ["scope": "\"read:databases caf\u{e9}\""],
            ["scope": "\"read:databases x\\u007fy\""],
            ["scope": "\"read:databases\\nadmin\""],
            ["scope": nil, "scp": "[\"read:databases\", \"x admin\"]"],
            ["scope": nil, "scp": "[\"read:databases\", \"\"]"],
            ["scope": nil, "scp": "[\"read:databases\", \"a,b\"]"],
            ["scope": nil, "scp": "\"read:databases x\\tadmin\""],
        ] as [[String: String?]]
    )
    func scopeValuesThatAreNotScopeTokensRefuseTheToken(overrides: [String: String?]) {
        let result = check(overrides)
        #expect(result.value == nil, "admitted with scopes \(result.value?.principal.scopes ?? [])")
        #expect(isMalformed(result.jwtFailure))
    }

    @Test func otherClaimsOfTheWrongType() {
        #expect(isMalformed(check(["jti": "42"]).jwtFailure))
        #expect(isMalformed(check(["jti": "\"\""]).jwtFailure))
        #expect(isMalformed(check(["jti": "\"\(String(repeating: "j", count: 129))\""]).jwtFailure))
        #expect(isMalformed(check(["client_id": "7"]).jwtFailure))
        #expect(check(["client_id": "\"app\""]).value?.principal.clientID == "app")
        #expect(check(["jti": nil]).value?.tokenID == nil)
        // Unknown claims of any type are ignored.
        #expect(check(["x": "{\"y\":[1,2,{\"z\":null}]}"]).value != nil)
    }

    @Test func ownTokenWithClientIDIsAnOAuthPrincipal() throws {
        var own = Self.policy()
        own.isOwn = true
        let oauth = try #require(check(["client_id": "\"cid_app\""], policy: own).value).principal
        #expect(oauth.kind == .oauth && oauth.clientID == "cid_app")
        #expect(oauth.rateLimitKey == "client:cid_app")
        // A login token of ours (no client_id) stays a JWT; so does an external issuer's
        // token that names a client.
        #expect(try #require(check([:], policy: own).value).principal.kind == .jwt)
        #expect(try #require(check(["client_id": "\"\""], policy: own).value).principal.kind == .jwt)
        #expect(try #require(check(["client_id": "\"cid_app\""]).value).principal.kind == .jwt)
    }
}
