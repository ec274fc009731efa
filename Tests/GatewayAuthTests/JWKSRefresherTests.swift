import Foundation
import GatewayConfig
import GatewayCrypto
import GatewayTestSupport
import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import GatewayAuth

/// A scripted HTTP fetcher: a response (or a held promise) per URL, and every request seen.
final class FakeHTTP: @unchecked Sendable {
    private let lock = NSLock()
    private var responses: [String: HTTPFetchResponse] = [:]
    private var holding = false
    private var held: [EventLoopPromise<HTTPFetchResponse>] = []
    private var requested: [String] = []
    let loop: EmbeddedEventLoop

    init(loop: EmbeddedEventLoop) { self.loop = loop }

    func serve(_ url: String, status: Int = 200, cacheControl: String? = nil, body: String) {
        lock.withLock {
            responses[url] = HTTPFetchResponse(status: status, cacheControl: cacheControl, body: Array(body.utf8))
        }
    }

    func hold() { lock.withLock { holding = true } }

    /// Completes every held request with what is served now.
    func release() {
        let (promises, urls): ([EventLoopPromise<HTTPFetchResponse>], [HTTPFetchResponse]) = lock.withLock {
            holding = false
            defer { held = [] }
            return (held, held.map { _ in responses[requested.last!]! })
        }
        for (promise, response) in zip(promises, urls) { promise.succeed(response) }
    }

    var requests: [String] { lock.withLock { requested } }

    var fetcher: HTTPFetcher {
        { url, _, _, _ in
            self.lock.withLock {
                self.requested.append(url)
                if self.holding {
                    let promise = self.loop.makePromise(of: HTTPFetchResponse.self)
                    self.held.append(promise)
                    return promise.futureResult
                }
                guard let response = self.responses[url] else {
                    return self.loop.makeSucceededFuture(HTTPFetchResponse(status: 404, cacheControl: nil, body: []))
                }
                return self.loop.makeSucceededFuture(response)
            }
        }
    }
}

final class InstalledSets: @unchecked Sendable {
    private let lock = NSLock()
    private var sets: [(String, JSONWebKeySet)] = []
    func append(_ issuer: String, _ set: JSONWebKeySet) { lock.withLock { sets.append((issuer, set)) } }
    var all: [(String, JSONWebKeySet)] { lock.withLock { sets } }
}

private func ecJWK(_ key: AsymmetricKey, kid: String) -> String {
    let p = key.publicParameters
    return #"{"kty":"EC","crv":"P-256","kid":"\#(kid)","x":"\#(b64(p["x"]!))","y":"\#(b64(p["y"]!))"}"#
}

private func rsaJWK(n: [UInt8], e: [UInt8], kid: String) -> String {
    #"{"kty":"RSA","kid":"\#(kid)","n":"\#(b64(n))","e":"\#(b64(e))"}"#
}

private let jwksURL = "https://idp.example.com/jwks.json"

final class RefresherHarness {
    let loop = EmbeddedEventLoop()
    let http: FakeHTTP
    let installed = InstalledSets()
    /// The unknown-kid cap's clock (the scheduled refreshes run on `loop`).
    let clock = ManualClock()
    let refresher: JWKSRefresher

    init(source: IssuerSettings.KeySource = .jwksURL(jwksURL), refetchInterval: Duration = .seconds(30)) {
        self.http = FakeHTTP(loop: loop)
        var settings = IssuerSettings(issuer: testIssuer, keySource: source, audiences: [testAudience])
        settings.unknownKeyRefetchInterval = refetchInterval
        settings.minRefreshInterval = .seconds(60)
        settings.maxRefreshInterval = .seconds(3600)
        let installed = self.installed
        let loop = self.loop
        let clock = self.clock
        self.refresher = JWKSRefresher(
            eventLoop: loop,
            issuers: [settings],
            fetcher: http.fetcher,
            logger: Logger(label: "test"),
            clock: clock.clock,
            install: { issuer, set in
                installed.append(issuer, set)
                return loop.makeSucceededVoidFuture()
            }
        )
    }

    /// The refresher's scheduled refresh (on `loop`) holds the refresher, which holds the
    /// loop: stopping it cancels the task, so both are freed with the harness (LeakSanitizer).
    deinit {
        self.refresher.stop()
        self.loop.run()
    }

    func fetches() throws -> Int { try value(of: refresher.fetchCount(issuer: testIssuer), on: loop) }

    func refetch() -> Result<Void, any Error>? {
        completion(of: refresher.refetch(issuer: testIssuer, from: loop), on: loop)
    }
}

@Suite struct JWKSRefresherTests {
    static let goodSet = #"{"keys":[\#(ecJWK(TestKeys.p256, kid: "ec1"))]}"#

    @Test func initialFetchInstallsKeysAndDropsWeakOnes() throws {
        let h = RefresherHarness()
        let weakRSA = try AsymmetricKey.generate(.rsa(bits: 1024)).publicParameters
        let strong = TestKeys.rsa.publicParameters
        var offCurve = TestKeys.p256.publicParameters["y"]!
        offCurve[31] ^= 1
        let keys = [
            ecJWK(TestKeys.p256, kid: "ec1"),
            rsaJWK(n: weakRSA["n"]!, e: weakRSA["e"]!, kid: "rsa1024"),
            rsaJWK(n: strong["n"]!, e: [1], kid: "e1"),
            rsaJWK(n: strong["n"]!, e: strong["e"]!, kid: "rsa2048"),
            #"{"kty":"EC","crv":"P-256","kid":"off","x":"\#(b64(TestKeys.p256.publicParameters["x"]!))","y":"\#(b64(offCurve))"}"#,
            #"{"kty":"EC","crv":"P-521","kid":"p521","x":"AA","y":"AA"}"#,
            #"{"kty":"RSA","kid":"nomod","e":"AQAB"}"#,
            #"{"kty":"RSA","kid":"enc","use":"enc","n":"\#(b64(strong["n"]!))","e":"AQAB"}"#,
        ]
        h.http.serve(jwksURL, body: #"{"keys":[\#(keys.joined(separator: ","))]}"#)
        h.refresher.start()
        h.loop.run()
        let installed = h.installed.all
        #expect(installed.count == 1)
        let set = try #require(installed.first?.1)
        #expect(installed.first?.0 == testIssuer)
        #expect(set.keys.compactMap(\.keyID).sorted() == ["ec1", "rsa2048"])
        #expect(set.problems.count == 6, "\(set.problems)")
        #expect(try h.fetches() == 1)
    }

    @Test func symmetricKeysFromAURLAreRefused() throws {
        let h = RefresherHarness()
        h.http.serve(
            jwksURL,
            body: #"{"keys":[{"kty":"oct","alg":"HS256","kid":"s","k":"\#(b64(TestKeys.hmacSecret))"}]}"#
        )
        h.refresher.start()
        h.loop.run()
        #expect(h.installed.all.isEmpty)
    }

    @Test func refetchJoinsTheFetchInFlight() throws {
        let h = RefresherHarness(refetchInterval: .zero)
        h.http.serve(jwksURL, body: Self.goodSet)
        h.http.hold()
        h.refresher.start()
        h.loop.run()
        #expect(try h.fetches() == 1)
        let first = h.refresher.refetch(issuer: testIssuer, from: h.loop)
        let second = h.refresher.refetch(issuer: testIssuer, from: h.loop)
        h.loop.run()
        #expect(try h.fetches() == 1)
        #expect(h.http.requests.count == 1)
        h.http.release()
        #expect(completion(of: first, on: h.loop) != nil)
        #expect(completion(of: second, on: h.loop) != nil)
        #expect(throws: Never.self) { try completion(of: first, on: h.loop)?.get() }
        #expect(h.installed.all.count == 1)
    }

    @Test func rateCapRefusesASecondRefetchWithinTheInterval() throws {
        let h = RefresherHarness(refetchInterval: .seconds(30))
        h.http.serve(jwksURL, body: Self.goodSet)
        h.refresher.start()
        h.loop.run()
        #expect(try h.fetches() == 1)
        // The initial fetch just started: a refetch now is refused without fetching.
        let refused = try #require(h.refetch())
        #expect(throws: JWKSRefresher.RefetchRefused.self) { try refused.get() }
        #expect(try h.fetches() == 1)
        for _ in 0..<50 { _ = h.refetch() }
        #expect(try h.fetches() == 1)
        #expect(h.http.requests.count == 1)
    }

    @Test func refetchIsAllowedOnceTheIntervalPassed() throws {
        let h = RefresherHarness(refetchInterval: .milliseconds(100))
        h.http.serve(jwksURL, body: Self.goodSet)
        h.refresher.start()
        h.loop.run()
        // The cap reads the injected clock: moved by hand, no wall-clock wait.
        h.clock.advance(by: .milliseconds(99))
        let early = try #require(h.refetch())
        #expect(throws: JWKSRefresher.RefetchRefused.self) { try early.get() }
        h.clock.advance(by: .milliseconds(1))
        #expect(throws: Never.self) { try h.refetch()?.get() }
        #expect(try h.fetches() == 2)
        let again = try #require(h.refetch())
        #expect(throws: JWKSRefresher.RefetchRefused.self) { try again.get() }
        #expect(try h.fetches() == 2)
    }

    @Test func providerDownKeepsTheOldKeys() throws {
        let h = RefresherHarness(refetchInterval: .zero)
        h.http.serve(jwksURL, body: Self.goodSet)
        h.refresher.start()
        h.loop.run()
        #expect(h.installed.all.count == 1)
        for (status, body) in [
            (503, "down"), (200, "not json"), (200, #"{"keys":[]}"#),
            (200, #"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}"#),
        ] {
            h.http.serve(jwksURL, status: status, body: body)
            let outcome = try #require(h.refetch())
            #expect(throws: (any Error).self, "\(status) \(body)") { try outcome.get() }
        }
        // Nothing replaced the good set (no empty set was installed over it).
        #expect(h.installed.all.count == 1)
        #expect(try h.fetches() == 5)
        // A JWKS holding a private key is refused whole.
        h.http.serve(jwksURL, body: #"{"keys":[\#(ecJWK(TestKeys.p256, kid: "x").dropLast()),"d":"AAAA"}]}"#)
        #expect(throws: (any Error).self) { try h.refetch()?.get() }
        #expect(h.installed.all.count == 1)
        // Back up: new keys are installed.
        h.http.serve(jwksURL, body: #"{"keys":[\#(ecJWK(TestKeys.p256, kid: "ec2"))]}"#)
        #expect(throws: Never.self) { try h.refetch()?.get() }
        #expect(h.installed.all.last?.1.keys.compactMap(\.keyID) == ["ec2"])
    }

    @Test func backgroundRefreshFollowsCacheControl() throws {
        let h = RefresherHarness()
        h.http.serve(jwksURL, cacheControl: "public, max-age=120", body: Self.goodSet)
        h.refresher.start()
        h.loop.run()
        #expect(try h.fetches() == 1)
        h.loop.advanceTime(by: .seconds(119))
        #expect(try h.fetches() == 1)
        h.loop.advanceTime(by: .seconds(1))
        #expect(try h.fetches() == 2)
        // After stop nothing more is fetched.
        h.refresher.stop()
        h.loop.run()
        h.loop.advanceTime(by: .seconds(7200))
        #expect(try h.fetches() == 2)
    }

    @Test func discoveryDocumentLeadsToJWKSURI() throws {
        let discovery = "https://idp.example.com/.well-known/openid-configuration"
        let h = RefresherHarness(source: .discovery(discovery))
        h.http.serve(discovery, body: #"{"issuer":"\#(testIssuer)","jwks_uri":"https://keys.example.com/k"}"#)
        h.http.serve("https://keys.example.com/k", body: Self.goodSet)
        h.refresher.start()
        h.loop.run()
        #expect(h.http.requests == [discovery, "https://keys.example.com/k"])
        #expect(h.installed.all.first?.1.keys.first?.keyID == "ec1")
    }

    @Test(arguments: [
        #"{"issuer":"https://other.example.com","jwks_uri":"https://keys.example.com/k"}"#,
        #"{"issuer":"https://idp.example.com","jwks_uri":"file:///etc/passwd"}"#,
        #"{"issuer":"https://idp.example.com"}"#,
        #"{"issuer":"https://idp.example.com","jwks_uri":"https://keys.example.com/k","jwks_uri":"https://evil.example.com/k"}"#,
        // No step down from https discovery to keys in the clear, and no document without issuer.
        #"{"issuer":"\#(testIssuer)","jwks_uri":"http://keys.example.com/k"}"#,
        #"{"jwks_uri":"https://keys.example.com/k"}"#,
    ])
    func unusableDiscoveryDocumentsInstallNothing(document: String) throws {
        let discovery = "https://idp.example.com/.well-known/openid-configuration"
        let h = RefresherHarness(source: .discovery(discovery))
        h.http.serve(discovery, body: document)
        h.http.serve("https://keys.example.com/k", body: Self.goodSet)
        h.http.serve("https://evil.example.com/k", body: Self.goodSet)
        h.http.serve("http://keys.example.com/k", body: Self.goodSet)
        h.refresher.start()
        h.loop.run()
        #expect(h.installed.all.isEmpty)
        #expect(h.http.requests == [discovery])
    }

    // MARK: refreshInterval

    private static let settings: IssuerSettings = {
        var settings = IssuerSettings(issuer: "i", keySource: .jwksURL(jwksURL), audiences: [])
        settings.minRefreshInterval = .seconds(60)
        settings.maxRefreshInterval = .seconds(3600)
        return settings
    }()

    @Test(
        arguments: [
            (nil, 3600), ("", 3600), ("max-age=600", 600), ("public, max-age=600", 600), ("MAX-AGE=600", 600),
            ("max-age=10", 60), ("max-age=0", 60), ("max-age=-5", 60), ("max-age=999999999999", 3600),
            ("max-age=86400", 3600), ("no-cache", 60), ("no-store, max-age=600", 60), ("private, no-cache", 60),
            ("max-age=\"600\"", 600), ("s-maxage=300", 300), ("max-age=abc", 3600), ("must-revalidate", 3600),
            ("max-age=60", 60), ("max-age=3600", 3600), ("max-age=61", 61),
        ] as [(String?, Int64)]
    )
    func refreshIntervalIsClamped(header: String?, seconds: Int64) {
        #expect(JWKSRefresher.refreshInterval(cacheControl: header, settings: Self.settings) == .seconds(seconds))
    }
}
