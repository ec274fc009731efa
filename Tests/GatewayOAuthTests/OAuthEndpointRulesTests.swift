import GatewayConfig
import GatewayStore
import Testing

@testable import GatewayOAuth

/// The pure rules of the token endpoint: what a redeemed code demands of the request that
/// presents it, where the metadata lives, and which kind of token a string is.
@Suite struct OAuthEndpointRulesTests {
    static let challenge = PKCETests.rfcChallenge
    static let verifier = PKCETests.rfcVerifier

    static func client(_ id: String = "app", isPublic: Bool = false) -> OAuthClient {
        OAuthClient(
            id: id,
            name: id,
            redirectURIs: ["https://a.test/cb"],
            grantTypes: [.authorizationCode],
            scopes: ["read:logs"],
            isPublic: isPublic,
            secretHash: nil,
            source: .config,
            createdAt: 0
        )
    }

    static func code(client: String = "app", challenge: String? = challenge) -> AuthorizationCodeRecord {
        AuthorizationCodeRecord(
            clientID: client,
            redirectURI: "https://a.test/cb",
            codeChallenge: challenge,
            userID: "usr_1",
            email: "a@b.test",
            scopes: ["read:logs"],
            issuedAt: 0,
            expiresAt: 60
        )
    }

    @Test func aMatchingRequestPasses() {
        #expect(
            OAuthEndpoint.problem(
                with: Self.code(),
                client: Self.client(),
                redirectURI: "https://a.test/cb",
                verifier: Self.verifier
            ) == nil
        )
        // A confidential client may go without PKCE when the code has none.
        #expect(
            OAuthEndpoint.problem(
                with: Self.code(challenge: nil),
                client: Self.client(),
                redirectURI: "https://a.test/cb",
                verifier: nil
            ) == nil
        )
    }

    @Test func everyMismatchIsAProblem() {
        let cb = "https://a.test/cb"
        #expect(
            OAuthEndpoint.problem(
                with: Self.code(client: "other"),
                client: Self.client(),
                redirectURI: cb,
                verifier: Self.verifier
            ) != nil
        )
        #expect(
            OAuthEndpoint.problem(
                with: Self.code(),
                client: Self.client(),
                redirectURI: cb + "/",
                verifier: Self.verifier
            ) != nil
        )
        #expect(OAuthEndpoint.problem(with: Self.code(), client: Self.client(), redirectURI: cb, verifier: nil) != nil)
        #expect(
            OAuthEndpoint.problem(with: Self.code(), client: Self.client(), redirectURI: cb, verifier: Self.challenge)
                != nil
        )
        #expect(
            OAuthEndpoint.problem(
                with: Self.code(),
                client: Self.client(),
                redirectURI: cb,
                verifier: String(Self.verifier.dropLast())
            ) != nil
        )
        // Downgrade: a verifier for a code issued without a challenge.
        #expect(
            OAuthEndpoint.problem(
                with: Self.code(challenge: nil),
                client: Self.client(),
                redirectURI: cb,
                verifier: Self.verifier
            ) != nil
        )
        // A public client without PKCE.
        #expect(
            OAuthEndpoint.problem(
                with: Self.code(challenge: nil),
                client: Self.client(isPublic: true),
                redirectURI: cb,
                verifier: nil
            ) != nil
        )
    }

    @Test func metadataIsAlsoServedUnderTheIssuersPath() {
        #expect(OAuthEndpoint.metadataPaths(issuer: "https://gw.test") == ["/.well-known/oauth-authorization-server"])
        #expect(OAuthEndpoint.metadataPaths(issuer: "https://gw.test/") == ["/.well-known/oauth-authorization-server"])
        #expect(
            OAuthEndpoint.metadataPaths(issuer: "https://gw.test/a/b/")
                == ["/.well-known/oauth-authorization-server", "/.well-known/oauth-authorization-server/a/b"]
        )
        #expect(OAuthEndpoint.endpoint("https://gw.test/", "/oauth/token") == "https://gw.test/oauth/token")
    }

    @Test func tokensAreToldApartByTheirShape() {
        if case .refresh(let hash) = OAuthEndpoint.kind(of: "dbaudit_rt_" + String(repeating: "A", count: 43)) {
            #expect(hash.count == 64)
        } else {
            Issue.record("a refresh token")
        }
        if case .opaque = OAuthEndpoint.kind(of: "dbaudit_at_" + String(repeating: "A", count: 43)) {
        } else {
            Issue.record("an opaque token")
        }
        if case .jwt = OAuthEndpoint.kind(of: "a.b.c") {} else { Issue.record("a JWT") }
        if case .unknown = OAuthEndpoint.kind(of: "whatever") {} else { Issue.record("unknown") }
        if case .unknown = OAuthEndpoint.kind(of: String(repeating: "a.", count: 5000)) {
        } else {
            Issue.record("oversized")
        }
    }

    @Test func theMetadataDocumentListsOnlyWhatIsSupported() {
        let document = OAuthEndpoint.metadata(issuer: "https://gw.test")
        #expect(document.contains("\"code_challenge_methods_supported\":[\"S256\"]"))
        #expect(!document.contains("plain") && !document.contains("implicit") && !document.contains("[]"))
        #expect(document.hasPrefix("{\"issuer\":\"https://gw.test\""))
    }
}
