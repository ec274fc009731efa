import Foundation
import GatewayConfig
import GatewayPages
import Testing

@Suite struct AuthorizeValidationTests {
    static let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    let publicClient = AuthorizeClient(
        id: "cli",
        name: "CLI",
        redirectURIs: ["http://127.0.0.1/callback", "https://app.example.com/cb"],
        scopes: ["read:logs", "read:reports"],
        isPublic: true,
        allowsAuthorizationCode: true
    )
    let confidential = AuthorizeClient(
        id: "web",
        name: "Web",
        redirectURIs: ["https://web.example.com/oauth/cb"],
        scopes: ["read:logs"],
        isPublic: false,
        allowsAuthorizationCode: true
    )

    func outcome(_ query: String, client: AuthorizeClient?) -> AuthorizeValidation.Outcome {
        switch AuthorizeValidation.parse(query: query) {
        case .failure(let error): return .page(error)
        case .success(let parsed): return AuthorizeValidation.validate(fields: parsed.fields, client: client)
        }
    }

    func base(_ redirect: String = "https%3A%2F%2Fapp.example.com%2Fcb") -> String {
        "response_type=code&client_id=cli&redirect_uri=\(redirect)&state=xyz&code_challenge=\(Self.challenge)&code_challenge_method=S256"
    }

    func isPage(_ outcome: AuthorizeValidation.Outcome) -> Bool {
        if case .page = outcome { return true }
        return false
    }

    func redirectError(_ outcome: AuthorizeValidation.Outcome) -> String? {
        if case .redirect(let redirect) = outcome { return redirect.error }
        return nil
    }

    @Test func validRequest() {
        #expect(
            outcome(base() + "&scope=read%3Alogs", client: publicClient)
                == .valid(
                    AuthorizeRequest(
                        clientID: "cli",
                        redirectURI: "https://app.example.com/cb",
                        state: "xyz",
                        requestedScopes: ["read:logs"],
                        codeChallenge: Self.challenge
                    )
                )
        )
    }

    @Test func unknownClientOrMissingClientIDIsAPage() {
        #expect(isPage(outcome(base(), client: nil)))
        #expect(
            isPage(outcome("response_type=code&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb", client: publicClient))
        )
        #expect(isPage(outcome(base() + "&client_id=cli", client: publicClient)))
        #expect(isPage(outcome("client_id=%ZZ", client: publicClient)))
    }

    @Test func missingDuplicateOrUnregisteredRedirectURIIsAPage() {
        #expect(isPage(outcome("response_type=code&client_id=cli&state=x", client: publicClient)))
        #expect(isPage(outcome(base() + "&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb", client: publicClient)))
        #expect(isPage(outcome(base("https%3A%2F%2Fevil.example%2Fcb"), client: publicClient)))
    }

    @Test(arguments: [
        "https://app.example.com/cb/", "https://app.example.com/c", "https://app.example.com/cbx",
        "https://app.example.com/cb/../cb",
        "https://app.example.com/cb?x=1", "https://app.example.com/cb#frag", "https://app.example.com:8443/cb",
        "https://user@app.example.com/cb", "https://APP.example.com/cb", "https://app.example.com/CB",
        "https://app.example.com/%63b",
        "http://app.example.com/cb", "https://app.example.com.evil.example/cb", "http://127.0.0.1:5000/other",
        "http://127.0.0.1.evil.example/callback", "http://127.0.0.1:/callback", "http://127.0.0.1:99999/callback",
        "http://localhost:5000/callback", "https://127.0.0.1:5000/callback", "http://127.0.0.1:5000/callback?x=1",
        "http://user@127.0.0.1:5000/callback", "http://127.0.0.1:5000/callback#x", "http://127.0.0.2:5000/callback",
    ])
    func redirectURITricksNeverMatch(_ uri: String) {
        #expect(!publicClient.redirectURIs.contains { OAuthRedirectURI.matches(registered: $0, presented: uri) })
        #expect(isPage(outcome(base(FormFields.encode(uri)), client: publicClient)))
    }

    @Test func loopbackMatchesAnyPort() {
        #expect(
            OAuthRedirectURI.matches(
                registered: "http://127.0.0.1/callback",
                presented: "http://127.0.0.1:51004/callback"
            )
        )
        #expect(
            OAuthRedirectURI.matches(
                registered: "http://127.0.0.1:8080/callback",
                presented: "http://127.0.0.1/callback"
            )
        )
        #expect(OAuthRedirectURI.matches(registered: "http://[::1]/cb", presented: "http://[::1]:7000/cb"))
        #expect(!OAuthRedirectURI.matches(registered: "http://127.0.0.1/cb", presented: "http://[::1]:7000/cb"))
        // Non-loopback URIs keep their port.
        #expect(!OAuthRedirectURI.matches(registered: "https://a.example/cb", presented: "https://a.example:444/cb"))
    }

    @Test func afterTheRedirectURIErrorsRedirect() {
        #expect(redirectError(outcome(base() + "&state=again", client: publicClient)) == "invalid_request")
        #expect(
            redirectError(
                outcome(base().replacingFirst("response_type=code", "response_type=token"), client: publicClient)
            ) == "unsupported_response_type"
        )
        #expect(
            redirectError(outcome(base().replacingFirst("response_type=code&", ""), client: publicClient))
                == "invalid_request"
        )
        #expect(redirectError(outcome(base() + "&scope=read%3Apolicies", client: publicClient)) == "invalid_scope")
        #expect(redirectError(outcome(base() + "&scope=bogus", client: publicClient)) == "invalid_scope")
        var noCode = publicClient
        noCode.allowsAuthorizationCode = false
        #expect(redirectError(outcome(base(), client: noCode)) == "unauthorized_client")
        if case .redirect(let redirect) = outcome(base() + "&scope=bogus", client: publicClient) {
            #expect(redirect.state == "xyz")
            #expect(redirect.redirectURI == "https://app.example.com/cb")
        }
    }

    @Test func pkceRules() {
        let uri = "response_type=code&client_id=cli&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb"
        // A public client must send S256.
        #expect(redirectError(outcome(uri, client: publicClient)) == "invalid_request")
        #expect(
            redirectError(
                outcome(uri + "&code_challenge=\(Self.challenge)&code_challenge_method=plain", client: publicClient)
            ) == "invalid_request"
        )
        #expect(
            redirectError(outcome(uri + "&code_challenge=\(Self.challenge)", client: publicClient)) == "invalid_request"
        )
        #expect(redirectError(outcome(uri + "&code_challenge_method=S256", client: publicClient)) == "invalid_request")
        #expect(
            redirectError(outcome(uri + "&code_challenge=short&code_challenge_method=S256", client: publicClient))
                == "invalid_request"
        )
        let bad = String(repeating: "a", count: 42) + "+"
        #expect(
            redirectError(
                outcome(
                    uri + "&code_challenge=\(FormFields.encode(bad))&code_challenge_method=S256",
                    client: publicClient
                )
            ) == "invalid_request"
        )
        let long = String(repeating: "a", count: 129)
        #expect(
            redirectError(outcome(uri + "&code_challenge=\(long)&code_challenge_method=S256", client: publicClient))
                == "invalid_request"
        )
        // A confidential client may omit PKCE, and may send S256.
        let web = "response_type=code&client_id=web&redirect_uri=https%3A%2F%2Fweb.example.com%2Foauth%2Fcb"
        #expect(
            outcome(web, client: confidential)
                == .valid(
                    AuthorizeRequest(
                        clientID: "web",
                        redirectURI: "https://web.example.com/oauth/cb",
                        state: nil,
                        requestedScopes: nil,
                        codeChallenge: nil
                    )
                )
        )
        if case .valid(let request) = outcome(
            web + "&code_challenge=\(Self.challenge)&code_challenge_method=S256",
            client: confidential
        ) {
            #expect(request.codeChallenge == Self.challenge)
        } else {
            Issue.record("S256 from a confidential client must be accepted")
        }
        #expect(
            redirectError(
                outcome(web + "&code_challenge=\(Self.challenge)&code_challenge_method=plain", client: confidential)
            ) == "invalid_request"
        )
    }

    @Test func grantedScopes() {
        #expect(
            AuthorizeValidation.grantedScopes(
                requested: ["read:logs"],
                clientScopes: ["read:logs", "read:reports"],
                userScopes: ["read:logs"]
            ) == ["read:logs"]
        )
        #expect(
            AuthorizeValidation.grantedScopes(
                requested: ["read:reports"],
                clientScopes: ["read:logs", "read:reports"],
                userScopes: ["read:logs"]
            ) == nil
        )
        #expect(
            AuthorizeValidation.grantedScopes(
                requested: nil,
                clientScopes: ["read:logs", "read:reports"],
                userScopes: ["read:reports", "write:alerts"]
            ) == ["read:reports"]
        )
        #expect(
            AuthorizeValidation.grantedScopes(requested: nil, clientScopes: ["read:logs"], userScopes: ["write:alerts"])
                == nil
        )
        #expect(
            AuthorizeValidation.grantedScopes(
                requested: ["read:logs", "read:reports"],
                clientScopes: [],
                userScopes: ["admin"]
            ) == ["read:logs", "read:reports"]
        )
    }

    @Test func locationCarriesStateAndIssuer() {
        #expect(
            AuthorizeValidation.location(
                redirectURI: "https://a.example/cb",
                parameters: [("code", "c1"), ("state", "a b&c")],
                issuer: "https://gw.example"
            )
                == "https://a.example/cb?code=c1&state=a%20b%26c&iss=https%3A%2F%2Fgw.example"
        )
        #expect(
            AuthorizeValidation.location(
                redirectURI: "https://a.example/cb?x=1",
                parameters: [("error", "access_denied"), ("state", nil)],
                issuer: "i"
            )
                == "https://a.example/cb?x=1&error=access_denied&iss=i"
        )
    }

    @Test func formFields() {
        guard case .success(let fields) = FormFields.parse("a=1&b=x+y%21&a=2&c".utf8) else {
            Issue.record("should parse")
            return
        }
        #expect(fields["a"] == "1")
        #expect(fields["b"] == "x y!")
        #expect(fields["c"] == "")
        #expect(fields.duplicates == ["a"])
        #expect(FormFields.parse("a=%4".utf8) == .failure(.malformed))
        #expect(FormFields.parse("a=%00".utf8) == .failure(.malformed))
        #expect(FormFields.parse("a=%FF".utf8) == .failure(.malformed))
        #expect(FormFields.parse(Array(repeating: UInt8(ascii: "a"), count: 20_000)) == .failure(.tooLarge))
    }
}

extension String {
    func replacingFirst(_ target: String, _ replacement: String) -> String {
        guard let range = self.range(of: target) else { return self }
        return self.replacingCharacters(in: range, with: replacement)
    }
}
