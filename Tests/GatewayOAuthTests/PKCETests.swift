import Testing

@testable import GatewayOAuth

@Suite struct PKCETests {
    /// RFC 7636 Appendix B.
    static let rfcVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    static let rfcChallenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

    @Test func theRFC7636AppendixBVectorMatches() {
        #expect(PKCE.challenge(for: Self.rfcVerifier) == Self.rfcChallenge)
        #expect(PKCE.verify(verifier: Self.rfcVerifier, challenge: Self.rfcChallenge))
        #expect(PKCE.isValidChallenge(Self.rfcChallenge))
    }

    @Test func aWrongVerifierFails() {
        #expect(!PKCE.verify(verifier: String(Self.rfcVerifier.dropLast()) + "A", challenge: Self.rfcChallenge))
        // plain: the challenge presented as its own verifier.
        #expect(!PKCE.verify(verifier: Self.rfcChallenge, challenge: Self.rfcChallenge))
    }

    @Test(arguments: [
        String(repeating: "a", count: 42), String(repeating: "a", count: 129), String(repeating: "a", count: 42) + "+",
        String(repeating: "a", count: 42) + "/", String(repeating: "a", count: 42) + "=",
        String(repeating: "a", count: 42) + " ",
        String(repeating: "a", count: 42) + "é",
    ])
    func verifiersOfBadLengthOrAlphabetAreRefused(verifier: String) {
        #expect(!PKCE.isValidVerifier(verifier))
        #expect(!PKCE.verify(verifier: verifier, challenge: PKCE.challenge(for: verifier)))
    }

    @Test(arguments: [
        String(repeating: "a", count: 43), String(repeating: "~", count: 128),
        "A-._~" + String(repeating: "0", count: 40),
    ])
    func verifiersAtTheLimitsAreAccepted(verifier: String) {
        #expect(PKCE.isValidVerifier(verifier))
        #expect(PKCE.verify(verifier: verifier, challenge: PKCE.challenge(for: verifier)))
    }

    @Test(arguments: ["", "short", Self.rfcChallenge + "A", String(Self.rfcChallenge.dropLast()) + "+"])
    func malformedChallengesAreRefused(challenge: String) {
        #expect(!PKCE.isValidChallenge(challenge))
    }
}
