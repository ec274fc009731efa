import GatewayAuth
import GatewayConfig
import GatewayCore
import GatewayRateLimit
import GatewayTestSupport
import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import GatewayProxy

private func limited(_ burst: Int, name: String = "tight") -> (inout GatewayConfiguration) -> Void {
    { configuration in
        configuration.rateLimits = [RateLimitPolicy(name: name, rate: 1, per: .hour, burst: burst)]
        configuration.routes = [RouteSettings(method: nil, path: "/**", scopes: [], isPublic: true, rateLimit: name)]
    }
}

@Suite struct ProxyRateLimitTests {
    @Test func admittedResponsesCarryTheHeadersAndTheRefusalNeverReachesTheUpstream() throws {
        let harness = try ProxyHarness(limited(2))
        defer { harness.finish() }
        let upstreamResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nRateLimit: \"upstream\";r=99;t=1\r\n\r\nok"
        for remaining in [1, 0] {
            try harness.send("GET /v1/databases HTTP/1.1\r\nHost: g\r\n\r\n")
            try harness.respond(upstreamResponse)
            let response = try #require(try harness.clientResponses().first)
            #expect(response.statusCode == 200)
            // q tokens per w seconds: a bucket of 2 refilling 1 per hour fills in 7200 s.
            #expect(response.values("RateLimit-Policy") == ["\"tight\";q=2;w=7200"])
            // The gateway's header replaces the upstream's.
            #expect(response.values("RateLimit").count == 1)
            #expect(response.values("RateLimit").first?.hasPrefix("\"tight\";r=\(remaining);t=") == true)
        }
        #expect(harness.upstreamCalls == 1)
        let before = try harness.upstreamRequests().count
        try harness.send("GET /v1/databases HTTP/1.1\r\nHost: g\r\n\r\n")
        let refused = try #require(try harness.clientResponses().first)
        #expect(refused.statusCode == 429)
        #expect(refused.bodyText.contains("\"error\":\"rate_limited\""))
        let retryAfter = try #require(Int(refused.values("Retry-After").first ?? ""))
        // One token per hour: the next one is up to an hour away, and never 0.
        #expect(retryAfter > 0 && retryAfter <= 3600)
        #expect(refused.values("RateLimit-Policy") == ["\"tight\";q=2;w=7200"])
        #expect(refused.values("RateLimit").first?.hasPrefix("\"tight\";r=0;t=") == true)
        #expect(try harness.upstreamRequests().count == 0, "refused request reached the upstream (\(before) before)")
        #expect(harness.client.isActive, "a 429 keeps the connection")
    }

    @Test func unlimitedRoutesHaveNoRateLimitHeaders() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send("GET /v1/databases HTTP/1.1\r\nHost: g\r\n\r\n")
        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        let response = try #require(try harness.clientResponses().first)
        #expect(!response.has("RateLimit-Policy"))
        #expect(!response.has("RateLimit"))
    }

    @Test func behindATrustedProxyEachForwardedClientHasItsOwnBucket() throws {
        let harness = try ProxyHarness { configuration in
            limited(1)(&configuration)
            configuration.server.trustedProxies = try! {
                guard case .success(let proxies) = TrustedProxies.parse(["192.0.2.0/24"]) else {
                    throw CancellationError()
                }
                return proxies
            }()
        }
        defer { harness.finish() }
        try harness.send("GET /a HTTP/1.1\r\nHost: g\r\nX-Forwarded-For: 203.0.113.5\r\n\r\n")
        let forwarded = try #require(try harness.upstreamRequests().first)
        #expect(forwarded.values("X-Forwarded-For") == ["203.0.113.5"])
        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        #expect(try harness.clientResponses().first?.statusCode == 200)
        // Another client behind the same proxy: its own bucket.
        try harness.send("GET /a HTTP/1.1\r\nHost: g\r\nX-Forwarded-For: 1.2.3.4, 203.0.113.6\r\n\r\n")
        let second = try #require(try harness.upstreamRequests().first)
        #expect(second.values("X-Forwarded-For") == ["203.0.113.6"])
        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        #expect(try harness.clientResponses().first?.statusCode == 200)
        // The first again: its bucket is empty.
        try harness.send("GET /a HTTP/1.1\r\nHost: g\r\nX-Forwarded-For: 203.0.113.5\r\n\r\n")
        #expect(try harness.clientResponses().first?.statusCode == 429)
    }

    @Test func withoutTrustedProxiesXForwardedForIsIgnored() throws {
        let harness = try ProxyHarness(limited(1))
        defer { harness.finish() }
        try harness.send("GET /a HTTP/1.1\r\nHost: g\r\nX-Forwarded-For: 203.0.113.5\r\n\r\n")
        #expect(try harness.upstreamRequests().first?.values("X-Forwarded-For") == ["192.0.2.10"])
        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        _ = try harness.clientResponses()
        // A different claimed address does not buy a new bucket.
        try harness.send("GET /a HTTP/1.1\r\nHost: g\r\nX-Forwarded-For: 198.51.100.7\r\n\r\n")
        #expect(try harness.clientResponses().first?.statusCode == 429)
    }
}

@Suite struct ClientAddressTests {
    static let proxies: TrustedProxies = {
        guard case .success(let proxies) = TrustedProxies.parse(["10.0.0.0/8", "::1"]) else { fatalError() }
        return proxies
    }()

    @Test(arguments: [
        // peer, X-Forwarded-For lines, expected client
        ("192.0.2.1", ["203.0.113.9"], "192.0.2.1"),  // untrusted peer: header ignored
        ("10.0.0.2", [], "10.0.0.2"),  // trusted peer, no header
        ("10.0.0.2", ["203.0.113.9"], "203.0.113.9"),
        ("10.0.0.2", ["6.6.6.6, 203.0.113.9"], "203.0.113.9"),  // the client's own claim is ignored
        ("10.0.0.2", ["203.0.113.9, 10.1.1.1"], "203.0.113.9"),  // trusted hops skipped
        ("10.0.0.2", ["203.0.113.9", "10.1.1.1"], "203.0.113.9"),  // several header lines
        ("10.0.0.2", ["garbage, 10.1.1.1"], "10.1.1.1"),  // stop at what we can vouch for
        ("10.0.0.2", ["10.1.1.1, 10.2.2.2"], "10.1.1.1"),  // all trusted: the leftmost
        ("::1", ["2001:db8::7"], "2001:db8::7"),
        ("10.0.0.2", ["not-an-ip"], "10.0.0.2"),
    ])
    func resolve(peer: String, forwardedFor: [String], expected: String) {
        #expect(ClientAddress.resolve(peer: peer, forwardedFor: forwardedFor, trusted: Self.proxies) == expected)
    }
}

@Suite struct RateLimitGateCombineTests {
    static func decision(_ policy: String, allowed: Bool, retry: Int = 0) -> RateLimitDecision {
        RateLimitDecision(
            policy: policy,
            allowed: allowed,
            limit: 5,
            remaining: allowed ? 3 : 0,
            resetSeconds: 7,
            retryAfterSeconds: retry,
            windowSeconds: 60
        )
    }

    @Test func allAdmittedIsAdmittedWithEveryDecision() {
        guard
            case .admitted(let decisions) = RateLimitGate.combine([
                .decided(Self.decision("a", allowed: true)), .decided(Self.decision("b", allowed: true)),
            ])
        else {
            Issue.record("not admitted")
            return
        }
        #expect(decisions.map(\.policy) == ["a", "b"])
    }

    @Test func oneRefusalRefusesWithTheLongestWait() {
        guard
            case .refused(let error) = RateLimitGate.combine([
                .decided(Self.decision("a", allowed: false, retry: 3)),
                .decided(Self.decision("b", allowed: false, retry: 9)),
            ])
        else {
            Issue.record("not refused")
            return
        }
        #expect(error.status == 429)
        #expect(error.headers.first { $0.name == "Retry-After" }?.value == "9")
        #expect(error.headers.filter { $0.name == "RateLimit-Policy" }.count == 1)
    }

    @Test func anUnavailableStoreUnderDenyIs503NotA429() {
        guard
            case .refused(let error) = RateLimitGate.combine([
                .decided(Self.decision("a", allowed: true)), .storeUnavailable(policy: "a"),
            ])
        else {
            Issue.record("not refused")
            return
        }
        #expect(error.status == 503)
        #expect(error.code == "rate_limit_unavailable")
    }
}

@Suite struct RateLimitedLoginThrottleTests {
    static func throttle(perAddress: Int, perAccount: Int) -> (RateLimitedLoginThrottle, ManualClock, EmbeddedEventLoop)
    {
        let loop = EmbeddedEventLoop()
        let clock = ManualClock()
        let local = LocalRateLimiter(group: loop, clock: clock.clock)
        let limiter = RateLimiter(
            eventLoop: loop,
            local: local,
            redis: nil,
            logger: Logger(label: "t", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        var settings = JWTSettings()
        settings.loginAttemptsPerAddress = perAddress
        settings.loginAttemptsPerAccount = perAccount
        return (RateLimitedLoginThrottle(limiter: limiter, eventLoop: loop, settings: settings), clock, loop)
    }

    static func decide(
        _ throttle: RateLimitedLoginThrottle,
        _ loop: EmbeddedEventLoop,
        address: String,
        account: String?
    ) throws -> LoginThrottleDecision {
        let future = throttle.admit(address: address, account: account)
        loop.run()
        return try future.wait()
    }

    @Test func perAccountLimitWithAnHonestRetryAfterAndHeaders() throws {
        let (throttle, clock, loop) = Self.throttle(perAddress: 100, perAccount: 3)
        for index in 0..<3 {
            #expect(try Self.decide(throttle, loop, address: "a\(index)", account: "ann") == .allowed)
        }
        guard case .limited(let wait, let headers) = try Self.decide(throttle, loop, address: "b", account: "ann")
        else {
            Issue.record("fourth attempt on one account was not limited")
            return
        }
        // 3 per minute: one token every 20 s.
        #expect(wait == 20)
        #expect(headers.contains { $0.name == "RateLimit-Policy" && $0.value.contains("\"login-account\"") })
        clock.nanoseconds += UInt64(wait) * 1_000_000_000
        #expect(try Self.decide(throttle, loop, address: "c", account: "ann") == .allowed)
        // Other accounts were never affected.
        #expect(try Self.decide(throttle, loop, address: "d", account: "bob") == .allowed)
    }

    @Test func perAddressLimitAcrossAccountsAndAddressOnlyChecks() throws {
        let (throttle, _, loop) = Self.throttle(perAddress: 2, perAccount: 100)
        #expect(try Self.decide(throttle, loop, address: "x", account: "a") == .allowed)
        #expect(try Self.decide(throttle, loop, address: "x", account: nil) == .allowed)
        guard case .limited = try Self.decide(throttle, loop, address: "x", account: "c") else {
            Issue.record("third attempt from one address was not limited")
            return
        }
        #expect(try Self.decide(throttle, loop, address: "y", account: "c") == .allowed)
    }
}

@Suite struct ClientBucketKeyTests {
    @Test(arguments: [
        ("192.0.2.7", "addr:192.0.2.7"),
        ("::ffff:192.0.2.7", "addr:192.0.2.7"),
        // One subscriber holds a /64: every address in it shares the bucket.
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "addr6:2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "addr6:2001:db8:1:2::/64"),
        ("unknown", "addr:unknown"),
    ])
    func bucketKey(address: String, expected: String) {
        #expect(ClientAddress.bucketKey(address) == expected)
    }

    @Test func jwtSubjectsAreKeyedWithinTheirIssuer() {
        var own = Principal(subject: "usr_1", kind: .jwt, scopes: [])
        own.issuer = "https://gw.test"
        var foreign = Principal(subject: "usr_1", kind: .jwt, scopes: [])
        foreign.issuer = "https://idp.example"
        #expect(own.rateLimitKey != foreign.rateLimitKey)
    }
}

@Suite struct RateLimitGatePolicyTests {
    /// The route's policy first, then the credential's own tier unless it is the same one;
    /// names with no policy are skipped.
    @Test func theRoutePolicyAndTheCredentialsTierInOrder() {
        var configuration = GatewayConfiguration(upstream: UpstreamSettings(host: "127.0.0.1", port: 9))
        configuration.rateLimits = [
            RateLimitPolicy(name: "route", rate: 1, per: .hour, burst: 1),
            RateLimitPolicy(name: "gold", rate: 2, per: .hour, burst: 2),
        ]
        func names(_ route: String?, _ tier: String?, principal present: Bool = true) -> [String] {
            let principal =
                present ? Principal(subject: "s", kind: .apiKey, scopes: [], keyID: "k", rateLimit: tier) : nil
            return RateLimitGate.policies(route: route, principal: principal, configuration: configuration).map(\.name)
        }
        #expect(names(nil, nil).isEmpty)
        #expect(names(nil, nil, principal: false).isEmpty)
        #expect(names("route", nil) == ["route"])
        #expect(names("route", nil, principal: false) == ["route"])
        #expect(names(nil, "gold") == ["gold"])
        #expect(names("route", "gold") == ["route", "gold"])
        #expect(names("gold", "route") == ["gold", "route"])
        #expect(names("route", "route") == ["route"])
        #expect(names("missing", "gold") == ["gold"])
        #expect(names("route", "missing") == ["route"])
        #expect(names("missing", "missing").isEmpty)
    }
}
