import Foundation
import GatewayConfig
import GatewayCore
import GatewayCrypto
import GatewayStore
import Testing

@testable import GatewayOAuth

@Suite struct FormParametersTests {
    @Test func decodesPercentEscapesAndPlus() throws {
        let form = try FormParameters.parse(
            Array(
                "grant_type=client_credentials&scope=read%3Alogs+admin&x=&redirect_uri=https%3A%2F%2Fa.test%2Fcb".utf8
            )
        )
        #expect(form["grant_type"] == "client_credentials")
        #expect(form["scope"] == "read:logs admin")
        #expect(form["redirect_uri"] == "https://a.test/cb")
        // Empty counts as omitted, but was sent.
        #expect(form["x"] == nil && form.contains("x"))
        #expect(try FormParameters.parse([UInt8]()) == FormParameters())
    }

    @Test(arguments: ["a=1&a=2", "a=1&b=2&a=", "scope=x&scope=x"])
    func repeatedParametersAreRefused(body: String) {
        #expect(throws: FormParameters.Failure.self) { try FormParameters.parse(Array(body.utf8)) }
    }

    @Test(arguments: ["a=%", "a=%4", "a=%GG", "a=%FF", "a=%0A", "=x", "%00=1", "a=\u{7F}"])
    func brokenEscapesBadUTF8AndControlCharactersAreRefused(body: String) {
        #expect(throws: FormParameters.Failure.self) { try FormParameters.parse(Array(body.utf8)) }
    }

    @Test func countAndValueSizeAreBounded() throws {
        let many = (0..<33).map { "p\($0)=v" }.joined(separator: "&")
        #expect(throws: FormParameters.Failure.tooMany) { try FormParameters.parse(Array(many.utf8)) }
        let fine = (0..<32).map { "p\($0)=v" }.joined(separator: "&")
        #expect(try FormParameters.parse(Array(fine.utf8))["p31"] == "v")
        let long = "a=" + String(repeating: "x", count: FormParameters.maximumValueBytes + 1)
        #expect(throws: FormParameters.Failure.self) { try FormParameters.parse(Array(long.utf8)) }
    }
}

@Suite struct PresentedClientTests {
    func basic(_ text: String) -> String { "Basic " + Data(text.utf8).base64EncodedString() }
    func form(_ body: String) throws -> FormParameters { try FormParameters.parse(Array(body.utf8)) }

    @Test func basicCredentialsAreFormDecodedAndRawKept() throws {
        let encoded = try PresentedClient.parse(authorization: [basic("my%20app:s%2Bcret")], form: form("grant_type=x"))
        #expect(
            encoded == PresentedClient(clientID: "my app", secretCandidates: ["s+cret", "s%2Bcret"], method: .basic)
        )
        // A raw secret with `+`: tried decoded (space) and as sent.
        let raw = try PresentedClient.parse(authorization: [basic("app:a+b")], form: form(""))
        #expect(raw.secretCandidates == ["a b", "a+b"])
        // A colon in the secret stays in it.
        #expect(
            try PresentedClient.parse(authorization: [basic("app:x:y")], form: form("")).secretCandidates == ["x:y"]
        )
    }

    @Test func postAndPublicClients() throws {
        #expect(
            try PresentedClient.parse(authorization: [], form: form("client_id=app&client_secret=s"))
                == PresentedClient(clientID: "app", secretCandidates: ["s"], method: .post)
        )
        #expect(
            try PresentedClient.parse(authorization: [], form: form("client_id=spa"))
                == PresentedClient(clientID: "spa", secretCandidates: [], method: .none)
        )
    }

    @Test func ambiguousOrMissingAuthenticationIsRefused() throws {
        func code(_ authorization: [String], _ body: String) -> String? {
            do {
                _ = try PresentedClient.parse(authorization: authorization, form: try form(body))
                return nil
            } catch {
                return (error as? GatewayError)?.code
            }
        }
        #expect(code([basic("app:s")], "client_secret=s") == "invalid_request")
        #expect(code([basic("app:s")], "client_id=other") == "invalid_request")
        #expect(code([basic("app:s"), basic("app:s")], "") == "invalid_request")
        #expect(code(["Bearer abc"], "") == "invalid_client")
        #expect(code(["Basic !!!"], "") == "invalid_client")
        #expect(code([basic("no-colon")], "") == "invalid_client")
        #expect(code([basic("app:")], "") == "invalid_client")
        #expect(code([], "grant_type=client_credentials") == "invalid_client")
        #expect(code([basic("app:s")], "client_id=app") == nil)
    }
}

@Suite struct ClientRegistryTests {
    @Test func secretsVerifyOnlyAgainstTheirPepperedHash() {
        let hmac = HMACSHA256(key: Array("p".utf8) + Array(repeating: 7, count: 31))
        var settings = OAuthSettings()
        settings.clients = [
            OAuthClientSettings(
                id: "app",
                name: "App",
                scopes: ["read:logs"],
                secret: Secret("s" + String(repeating: "x", count: 40))
            ),
            OAuthClientSettings(id: "spa", name: "SPA", scopes: ["read:logs"], isPublic: true),
        ]
        let clients = OAuthClientRegistry.configuredClients(settings, hmac: hmac)
        let app = clients["app"]!
        #expect(
            app.source == .config && app.secretHash?.count == 64
                && app.secretHash != "s" + String(repeating: "x", count: 40)
        )
        #expect(OAuthClientRegistry.verify("s" + String(repeating: "x", count: 40), of: app, hmac: hmac))
        #expect(!OAuthClientRegistry.verify("s" + String(repeating: "x", count: 39), of: app, hmac: hmac))
        #expect(
            !OAuthClientRegistry.verify(
                "s" + String(repeating: "x", count: 40),
                of: app,
                hmac: HMACSHA256(key: [1, 2, 3])
            )
        )
        #expect(!OAuthClientRegistry.verify("", of: clients["spa"]!, hmac: hmac))
        #expect(!OAuthClientRegistry.verify("anything", of: clients["spa"]!, hmac: hmac))
    }

    @Test func generatedIdsAndSecretsUseOnlyUnreservedCharacters() {
        let id = OAuthClientCredentials.generateID()
        let secret = OAuthClientCredentials.generateSecret()
        #expect(id.hasPrefix("cid_") && id.count == 26 && OAuthClientID.isValid(id))
        #expect(
            secret.hasPrefix("dbaudit_cs_") && secret.count == 54 && secret.utf8.allSatisfy(OAuthClientID.isUnreserved)
        )
        #expect(OAuthClientSettings.secretProblem(secret) == nil)
        #expect(
            OAuthClientID.isValid("a.b_c-d~e") && !OAuthClientID.isValid("a b") && !OAuthClientID.isValid("a/b")
                && !OAuthClientID.isValid("")
        )
        #expect(!OAuthClientID.isValid(String(repeating: "a", count: 65)))
    }
}

@Suite struct RedirectURITests {
    @Test(arguments: [
        "https://app.example.test/callback", "https://app.example.test:8443/cb?x=1", "http://127.0.0.1/cb",
        "http://127.0.0.1:8080/cb",
        "http://[::1]:9/cb", "https://[2001:db8::1]/cb", "https://app.example.test", "https://a.test/p%20q",
    ])
    func registrable(uri: String) {
        #expect(OAuthRedirectURI.problem(with: uri) == nil)
    }

    @Test(arguments: [
        "http://app.example.test/cb", "http://localhost/cb", "https://app.example.test/cb#x",
        "https://*.example.test/cb",
        "https://user@app.example.test/cb", "https://app.example.test/a/../cb", "https://app.example.test/./cb",
        "ftp://a.test/cb",
        "/relative", "https://", "https://a.test:99999/cb", "https://a test/cb", "https://a.test/%zz",
        "http://127.0.0.1.evil.test/cb",
        "http://127.0.0.1@evil.test/cb", "https://a.test\\@b.test/cb", "javascript:alert(1)",
    ])
    func notRegistrable(uri: String) {
        #expect(OAuthRedirectURI.problem(with: uri) != nil)
    }

    /// Exact string comparison, except the port of a loopback URI (RFC 8252 §7.3).
    @Test func matching() {
        let registered = "https://app.example.test/callback"
        #expect(OAuthRedirectURI.matches(registered: registered, presented: registered))
        for trick in [
            "https://app.example.test/callback/", "https://app.example.test/callbackx",
            "https://app.example.test/callback?x=1",
            "https://app.example.test/callback#f", "https://APP.example.test/callback",
            "https://app.example.test/Callback",
            "https://app.example.test:443/callback", "https://app.example.test/%63allback",
            "http://app.example.test/callback",
            "https://app.example.test/callback/../callback", "https://evil@app.example.test/callback",
            "https://app.example.test.evil/callback",
        ] {
            #expect(!OAuthRedirectURI.matches(registered: registered, presented: trick), "\(trick)")
        }
        let loopback = "http://127.0.0.1/cb"
        #expect(OAuthRedirectURI.matches(registered: loopback, presented: "http://127.0.0.1:51234/cb"))
        #expect(OAuthRedirectURI.matches(registered: "http://127.0.0.1:8080/cb", presented: "http://127.0.0.1:9/cb"))
        #expect(OAuthRedirectURI.matches(registered: "http://[::1]/cb", presented: "http://[::1]:5000/cb"))
        for trick in [
            "http://127.0.0.1:51234/other", "http://127.0.0.1:51234/cb/x", "http://[::1]:5000/cb",
            "http://127.0.0.1:x/cb",
            "http://127.0.0.1:123456/cb", "https://127.0.0.1/cb", "http://127.0.0.1.evil/cb",
            "http://127.0.0.1:80@evil/cb",
        ] {
            #expect(!OAuthRedirectURI.matches(registered: loopback, presented: trick), "\(trick)")
        }
    }
}
