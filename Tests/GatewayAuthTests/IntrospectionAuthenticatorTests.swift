import Foundation
import GatewayConfig
import GatewayCore
import GatewayCrypto
import GatewayStore
import GatewayTestSupport
import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import GatewayAuth

/// An introspection endpoint in memory: answers per URL, records every request, can hold
/// answers back (a slow endpoint) or fail (a dead one). Embedded loop only.
private final class FakeEndpoints: @unchecked Sendable {
    var answers: [String: (status: Int, body: String)] = [:]
    var failing: Set<String> = []
    var hold = false
    private(set) var requests: [HTTPPostRequest] = []
    private var held: [(String, EventLoopPromise<HTTPFetchResponse>)] = []

    var poster: HTTPPoster {
        { request, loop in
            self.requests.append(request)
            if self.failing.contains(request.url) {
                return loop.makeFailedFuture(CredentialStoreError.unavailable)
            }
            if self.hold {
                let promise = loop.makePromise(of: HTTPFetchResponse.self)
                self.held.append((request.url, promise))
                return promise.futureResult
            }
            return loop.makeSucceededFuture(self.response(request.url))
        }
    }

    private func response(_ url: String) -> HTTPFetchResponse {
        let answer = self.answers[url] ?? (200, #"{"active":false}"#)
        return HTTPFetchResponse(status: answer.status, cacheControl: nil, body: Array(answer.body.utf8))
    }

    func release() {
        let held = self.held
        self.held = []
        for (url, promise) in held { promise.succeed(self.response(url)) }
    }
}

/// A shared cache in memory, or one that is down.
private final class FakeSharedCache: IntrospectionCacheStore, @unchecked Sendable {
    let loop: any EventLoop
    var results: [String: IntrospectionResult] = [:]
    var down = false
    private(set) var writes = 0

    init(loop: any EventLoop) { self.loop = loop }

    func cachedIntrospection(hash: String) -> EventLoopFuture<IntrospectionResult?> {
        if down { return loop.makeFailedFuture(CredentialStoreError.unavailable) }
        return loop.makeSucceededFuture(results[hash])
    }

    func cacheIntrospection(hash: String, result: IntrospectionResult, now: Int64) -> EventLoopFuture<Void> {
        if down { return loop.makeFailedFuture(CredentialStoreError.unavailable) }
        writes += 1
        results[hash] = result
        return loop.makeSucceededVoidFuture()
    }
}

private let first = "https://as-one.test/introspect"
private let second = "https://as-two.test/introspect"

@Suite struct IntrospectionAuthenticatorTests {
    private final class Harness {
        let loop = EmbeddedEventLoop()
        let clock = ManualClock(1_700_000_000)
        let endpoints = FakeEndpoints()
        let shared: FakeSharedCache
        let authenticator: IntrospectionAuthenticator

        init(
            urls: [String] = [first],
            cacheMax: Duration = .seconds(300),
            negativeTTL: Duration = .seconds(10),
            maximumEntries: Int = 1000,
            withShared: Bool = true
        ) {
            self.shared = FakeSharedCache(loop: self.loop)
            let settings = urls.map { url in
                var entry = IntrospectionSettings(
                    endpoint: url,
                    clientID: "gateway client",
                    clientSecret: Secret("s3cret:x")
                )
                entry.cacheMax = cacheMax
                entry.negativeTTL = negativeTTL
                return entry
            }
            let clock = self.clock
            self.authenticator = IntrospectionAuthenticator(
                endpoints: settings,
                post: self.endpoints.poster,
                shared: withShared ? self.shared : nil,
                eventLoop: self.loop,
                maximumEntries: maximumEntries,
                logger: Logger(label: "test"),
                clock: clock.clock
            )
        }

        func activeAnswer(_ url: String = first, lifetime: Int64 = 3600, scope: String = "read:databases") {
            self.endpoints.answers[url] = (
                200,
                #"{"active":true,"sub":"ext-1","client_id":"partner","scope":"\#(scope)","exp":\#(clock.now + lifetime)}"#
            )
        }

        /// The resolved verdict: the principal, or the error.
        func check(_ token: String) -> Result<Principal, GatewayError> {
            switch self.authenticator.check(token) {
            case .valid(let principal): return .success(principal)
            case .invalid(let error): return .failure(error)
            case .pending(let future):
                switch completion(of: future, on: self.loop) {
                case .success(let principal)?: return .success(principal)
                case .failure(let error as GatewayError)?: return .failure(error)
                default: return .failure(GatewayError(status: 0, code: "still pending", description: ""))
                }
            }
        }
    }

    @Test func activeTokenBecomesAnOAuthPrincipalAndTheRequestIsWellFormed() throws {
        let h = Harness()
        h.activeAnswer()
        let principal = try h.check("tok en+/=").get()
        #expect(principal.kind == .oauth && principal.subject == "ext-1" && principal.clientID == "partner")
        #expect(principal.scopes == ["read:databases"] && principal.issuer == first)
        let request = try #require(h.endpoints.requests.first)
        #expect(request.url == first)
        #expect(String(decoding: request.body, as: UTF8.self) == "token=tok+en%2B%2F%3D&token_type_hint=access_token")
        let expected = "Basic " + Data("gateway+client:s3cret%3Ax".utf8).base64EncodedString()
        #expect(request.headers.map(\.name) == ["Authorization"] && request.headers.first?.value == expected)
        #expect(request.maximumBytes == IntrospectionAnswer.maximumBytes && request.timeout == .milliseconds(500))
    }

    @Test func answersAreCachedUntilCacheMaxThenAskedAgain() throws {
        let h = Harness(cacheMax: .seconds(60))
        h.activeAnswer(lifetime: 3600)
        #expect(try h.check("t1").get().subject == "ext-1")
        h.clock.now += 59
        #expect(try h.check("t1").get().subject == "ext-1")
        #expect(h.endpoints.requests.count == 1 && h.authenticator.cacheHits == 1)
        // Shared with cachedUntil = asked + cache_max.
        let hash = Digest.sha256.hexHash("t1".utf8)
        #expect(h.shared.results[hash]?.cachedUntil == 1_700_000_060)
        h.clock.now += 1
        #expect(try h.check("t1").get().subject == "ext-1")
        #expect(h.endpoints.requests.count == 2)
    }

    @Test func aCachedAnswerNeverOutlivesExp() throws {
        let h = Harness(cacheMax: .seconds(300))
        h.activeAnswer(lifetime: 30)
        #expect(try h.check("t1").get().expiresAt == 1_700_000_030)
        #expect(h.shared.results.values.first?.cachedUntil == 1_700_000_030)
        h.clock.now += 29
        #expect((try? h.check("t1").get()) != nil)
        h.clock.now += 1
        h.endpoints.answers[first] = (200, #"{"active":false}"#)
        #expect(h.check("t1").error?.status == 401)
    }

    @Test func inactiveIsCachedForNegativeTTL() throws {
        let h = Harness(negativeTTL: .seconds(10))
        #expect(h.check("t1").error?.status == 401)
        h.clock.now += 9
        #expect(h.check("t1").error?.status == 401)
        #expect(h.endpoints.requests.count == 1)
        h.clock.now += 1
        h.activeAnswer()
        #expect((try? h.check("t1").get()) != nil)
        #expect(h.endpoints.requests.count == 2)
    }

    @Test func zeroNegativeTTLCachesNothing() {
        let h = Harness(negativeTTL: .zero)
        #expect(h.check("t1").error?.status == 401)
        #expect(h.check("t1").error?.status == 401)
        #expect(h.endpoints.requests.count == 2 && h.shared.writes == 0)
    }

    @Test func endpointFailuresAre503AndNotRemembered() throws {
        let h = Harness()
        h.endpoints.failing = [first]
        #expect(h.check("t1").error == GatewayError.authUnavailable)
        h.endpoints.failing = []
        for (status, body) in [(500, "{}"), (200, "not json"), (200, #"{"active":"yes"}"#)] {
            h.endpoints.answers[first] = (status, body)
            #expect(h.check("t1").error == GatewayError.authUnavailable, "\(status) \(body)")
        }
        #expect(h.shared.writes == 0 && h.authenticator.cachedTokens == 0)
        h.activeAnswer()
        #expect((try? h.check("t1").get()) != nil)
    }

    @Test func concurrentMissesShareOneIntrospection() throws {
        let h = Harness()
        h.activeAnswer()
        h.endpoints.hold = true
        let a = h.authenticator.check("t1")
        let b = h.authenticator.check("t1")
        #expect(h.endpoints.requests.count == 1)
        h.endpoints.release()
        for outcome in [a, b] {
            guard case .pending(let future) = outcome,
                case .success(let principal)? = completion(of: future, on: h.loop)
            else {
                Issue.record("expected a pending, then admitted, outcome")
                continue
            }
            #expect(principal.subject == "ext-1")
        }
    }

    @Test func introspectionsInFlightAreBounded() throws {
        let h = Harness(withShared: false)
        h.activeAnswer()
        h.endpoints.hold = true
        let pending = (0..<IntrospectionAuthenticator.maximumInFlight).map { h.authenticator.check("t\($0)") }
        #expect(h.endpoints.requests.count == IntrospectionAuthenticator.maximumInFlight)
        // One more new token: refused at once, the endpoint is not asked.
        #expect(h.check("one-too-many").error == GatewayError.authUnavailable)
        #expect(h.endpoints.requests.count == IntrospectionAuthenticator.maximumInFlight)
        // A token already on its way still joins its introspection.
        guard case .pending = h.authenticator.check("t0") else {
            Issue.record("a token in flight must join its introspection")
            return
        }
        h.endpoints.hold = false
        h.endpoints.release()
        for outcome in pending {
            guard case .pending(let future) = outcome, case .success? = completion(of: future, on: h.loop) else {
                Issue.record("a held introspection did not complete")
                continue
            }
        }
        #expect((try? h.check("one-too-many").get()) != nil)
    }

    @Test func sharedAnswerIsUsedAndASharedOutageIsNotFatal() throws {
        let h = Harness()
        let hash = Digest.sha256.hexHash("t1".utf8)
        h.shared.results[hash] = IntrospectionResult(
            active: true,
            subject: "from-another-instance",
            clientID: nil,
            scopes: ["read:logs"],
            issuer: "https://as.test",
            expiresAt: h.clock.now + 100,
            cachedUntil: h.clock.now + 50
        )
        #expect(try h.check("t1").get().subject == "from-another-instance")
        #expect(h.endpoints.requests.isEmpty)
        // An answer past its cachedUntil is not used, even if Redis still returns it.
        h.shared.results[Digest.sha256.hexHash("t2".utf8)] = IntrospectionResult.inactive(until: h.clock.now - 1)
        h.activeAnswer()
        #expect((try? h.check("t2").get()) != nil)
        // An answer kept longer than this configuration allows (cache_max 300 s here) is
        // not trusted: the endpoint is asked.
        h.shared.results[Digest.sha256.hexHash("t4".utf8)] = IntrospectionResult(
            active: true,
            subject: "long-lived",
            clientID: nil,
            scopes: [],
            issuer: nil,
            expiresAt: h.clock.now + 9000,
            cachedUntil: h.clock.now + 9000
        )
        #expect(try h.check("t4").get().subject == "ext-1")
        #expect(h.endpoints.requests.count == 2)
        // Redis down: the endpoint is asked.
        h.shared.down = true
        #expect((try? h.check("t3").get()) != nil)
        #expect(h.endpoints.requests.count == 3)
    }

    @Test func endpointsAreAskedInOrderUntilOneSaysActive() throws {
        let h = Harness(urls: [first, second])
        h.activeAnswer(second)
        #expect(try h.check("t1").get().subject == "ext-1")
        #expect(h.endpoints.requests.map(\.url) == [first, second])
        // All inactive: 401. The first failing: 503 (the second is not asked).
        h.endpoints.answers[second] = nil
        #expect(h.check("t2").error?.status == 401)
        h.endpoints.failing = [first]
        #expect(h.check("t3").error == GatewayError.authUnavailable)
        #expect(h.endpoints.requests.map(\.url) == [first, second, first, second, first])
    }

    @Test func theLoopCacheIsBounded() throws {
        let h = Harness(maximumEntries: 3, withShared: false)
        h.activeAnswer()
        for index in 0..<10 {
            #expect((try? h.check("t\(index)").get()) != nil)
            #expect(h.authenticator.cachedTokens <= 3)
        }
        // The newest are kept.
        #expect((try? h.check("t9").get()) != nil)
        #expect(h.endpoints.requests.count == 10)
    }
}
