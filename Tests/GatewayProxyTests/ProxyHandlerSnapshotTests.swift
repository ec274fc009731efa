import GatewayAuth
import GatewayConfig
import GatewayCore
import GatewayRateLimit
import GatewayStore
import GatewayTestSupport
import NIOCore
import NIOEmbedded
import Testing

@testable import GatewayProxy

/// The in-process store, whose API key lookups wait until the test releases them (a slow
/// Redis).
private final class HeldCredentialStore: CredentialStore {
    let inner: InMemoryCredentialStore
    private var held: [(hash: String, promise: EventLoopPromise<APIKeyRecord?>)] = []
    var eventLoop: any EventLoop { self.inner.eventLoop }
    var waiting: Int { self.held.count }

    init(_ inner: InMemoryCredentialStore) { self.inner = inner }

    func apiKey(hash: String) -> EventLoopFuture<APIKeyRecord?> {
        let promise = self.eventLoop.makePromise(of: APIKeyRecord?.self)
        self.held.append((hash, promise))
        return promise.futureResult
    }

    /// Answers every lookup waiting so far.
    func release() {
        let held = self.held
        self.held.removeAll()
        for (hash, promise) in held {
            self.inner.apiKey(hash: hash).cascade(to: promise)
        }
    }

    func apiKey(id: String) -> EventLoopFuture<APIKeyRecord?> { self.inner.apiKey(id: id) }
    func createAPIKey(_ record: APIKeyRecord, hash: String, maxPerOwner: Int?) -> EventLoopFuture<Void> {
        self.inner.createAPIKey(record, hash: hash, maxPerOwner: maxPerOwner)
    }
    func listAPIKeys() -> EventLoopFuture<[APIKeyRecord]> { self.inner.listAPIKeys() }
    func listAPIKeys(owner: String?, offset: Int, limit: Int) -> EventLoopFuture<APIKeyPage> {
        self.inner.listAPIKeys(owner: owner, offset: offset, limit: limit)
    }
    func revokeAPIKey(id: String) -> EventLoopFuture<APIKeyRecord?> { self.inner.revokeAPIKey(id: id) }
    func touchAPIKey(id: String, at time: Int64) -> EventLoopFuture<Void> { self.inner.touchAPIKey(id: id, at: time) }
}

/// One configuration snapshot per request: a reload while a request waits for its
/// credential decision changes nothing about that request.
@Suite struct ProxyHandlerSnapshotTests {
    /// The configuration in force when the request arrives: a guarded route with its own
    /// rate limit, the upstream's own Host, no credential or method override forwarded.
    private static func old(_ configuration: inout GatewayConfiguration) {
        configuration.upstream = UpstreamSettings(host: "backend.internal", port: 9000)
        configuration.upstream.preserveHost = false
        configuration.upstream.forwardMethodOverride = false
        configuration.apiKeys.forwardAuthorization = false
        configuration.rateLimits = [RateLimitPolicy(name: "old", rate: 1, per: .hour, burst: 5)]
        configuration.routes = [
            RouteSettings(method: nil, path: "/**", scopes: ["read:databases"], rateLimit: "old")
        ]
    }

    /// The reload's configuration differs in every setting the forwarded request shows.
    private static func new(_ old: GatewayConfiguration) -> GatewayConfiguration {
        var configuration = old
        configuration.upstream = UpstreamSettings(host: "backend-2.internal", port: 9100)
        configuration.upstream.preserveHost = true
        configuration.upstream.forwardMethodOverride = true
        configuration.apiKeys.forwardAuthorization = true
        configuration.rateLimits = [RateLimitPolicy(name: "new", rate: 1, per: .hour, burst: 9)]
        configuration.routes = [RouteSettings(method: nil, path: "/**", scopes: [], isPublic: true, rateLimit: "new")]
        return configuration
    }

    @Test func reloadDuringAuthorizationDoesNotMixConfigurations() throws {
        var store: HeldCredentialStore?
        let harness = try ProxyHarness(Self.old) { loop in
            let held = HeldCredentialStore(InMemoryCredentialStore(eventLoop: loop, data: InMemoryCredentialData()))
            store = held
            return held
        }
        defer { harness.finish() }
        let held = try #require(store)
        let key = try value(
            of: APIKeyService(store: held, hash: harness.context.authenticator.hash(apiKey:)).create(
                name: "snapshot",
                scopes: ["read:databases"],
                expiresInSeconds: nil,
                test: false,
                owner: "alice",
                grantor: nil,
                now: harness.clock.now
            ),
            on: harness.loop
        ).key

        try harness.send(
            "GET /v1/databases HTTP/1.1\r\nHost: gw.example\r\nAuthorization: Bearer \(key)\r\n"
                + "X-HTTP-Method-Override: DELETE\r\n\r\n"
        )
        #expect(held.waiting == 1, "the credential store is asked and has not answered")
        #expect(harness.upstreamCalls == 0)

        // SIGHUP while the request waits for Redis.
        harness.apply(Self.new(harness.context.configuration))
        held.release()

        // Everything about the forwarded request follows the configuration of its head.
        #expect(harness.upstreamCalls == 1)
        #expect(harness.connector.calls.first?.host == "backend.internal")
        #expect(harness.connector.calls.first?.port == 9000)
        let forwarded = try #require(try harness.upstreamRequests().first)
        #expect(forwarded.values("Host") == ["backend.internal:9000"])
        #expect(!forwarded.has("Authorization"))
        #expect(!forwarded.has("X-HTTP-Method-Override"))
        #expect(forwarded.values("X-DBAudit-Subject") == ["alice"])
        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        let response = try #require(try harness.clientResponses().first)
        #expect(response.statusCode == 200)
        #expect(response.values("RateLimit-Policy") == ["\"old\";q=5;w=18000"])
        #expect(response.values("RateLimit").first?.hasPrefix("\"old\";r=4;t=") == true)

        // The next request is the reload's: the new upstream, Host, forwarding and limit.
        try harness.send(
            "GET /v1/databases HTTP/1.1\r\nHost: gw.example\r\nAuthorization: Bearer \(key)\r\n"
                + "X-HTTP-Method-Override: DELETE\r\n\r\n"
        )
        #expect(held.waiting == 0, "an open route asks no store")
        #expect(harness.connector.calls.last?.host == "backend-2.internal")
        let next = try #require(try harness.upstreamRequests(1).first)
        #expect(next.values("Host") == ["gw.example"])
        #expect(next.values("Authorization") == ["Bearer \(key)"])
        #expect(next.values("X-HTTP-Method-Override") == ["DELETE"])
        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", on: 1)
        let nextResponse = try #require(try harness.clientResponses().first)
        #expect(nextResponse.values("RateLimit-Policy") == ["\"new\";q=9;w=32400"])
    }

    @Test func reloadDuringAuthorizationKeepsTheRefusalOfTheOldRoute() throws {
        var store: HeldCredentialStore?
        let harness = try ProxyHarness(Self.old) { loop in
            let held = HeldCredentialStore(InMemoryCredentialStore(eventLoop: loop, data: InMemoryCredentialData()))
            store = held
            return held
        }
        defer { harness.finish() }
        let held = try #require(store)
        let key = try value(
            of: APIKeyService(store: held, hash: harness.context.authenticator.hash(apiKey:)).create(
                name: "narrow",
                scopes: ["write:databases"],
                expiresInSeconds: nil,
                test: false,
                owner: "bob",
                grantor: nil,
                now: harness.clock.now
            ),
            on: harness.loop
        ).key

        try harness.send("GET /v1/databases HTTP/1.1\r\nHost: gw.example\r\nAuthorization: Bearer \(key)\r\n\r\n")
        #expect(held.waiting == 1)
        // The reload opens the route; the request asked under the old one is still judged
        // by it (its scope is missing), and nothing reaches either upstream.
        harness.apply(Self.new(harness.context.configuration))
        held.release()
        let response = try #require(try harness.clientResponses().first)
        #expect(response.statusCode == 403)
        #expect(jsonMember("error", in: response.bodyText) == "insufficient_scope")
        #expect(harness.upstreamCalls == 0)
    }

    @Test func credentialAnswerAfterTheClientLeftReachesNoUpstream() throws {
        var store: HeldCredentialStore?
        let harness = try ProxyHarness(Self.old) { loop in
            let held = HeldCredentialStore(InMemoryCredentialStore(eventLoop: loop, data: InMemoryCredentialData()))
            store = held
            return held
        }
        defer { harness.finish() }
        let held = try #require(store)
        let key = try value(
            of: APIKeyService(store: held, hash: harness.context.authenticator.hash(apiKey:)).create(
                name: "gone",
                scopes: ["read:databases"],
                expiresInSeconds: nil,
                test: false,
                owner: "carol",
                grantor: nil,
                now: harness.clock.now
            ),
            on: harness.loop
        ).key
        try harness.send("GET /v1/databases HTTP/1.1\r\nHost: gw.example\r\nAuthorization: Bearer \(key)\r\n\r\n")
        #expect(held.waiting == 1)
        try harness.client.close().wait()
        held.release()
        #expect(harness.upstreamCalls == 0, "a stale authorization must not acquire an upstream")
    }

    @Test func hstsFollowsTheSnapshotOfTheHeadOnATLSListener() throws {
        var store: HeldCredentialStore?
        let harness = try ProxyHarness(
            { configuration in
                Self.old(&configuration)
                var tls = ServerTLSSettings(certificateFile: "/unused/cert.pem", privateKeyFile: "/unused/key.pem")
                tls.hsts = false
                configuration.server.tls = tls
            },
            store: { loop in
                let held = HeldCredentialStore(InMemoryCredentialStore(eventLoop: loop, data: InMemoryCredentialData()))
                store = held
                return held
            },
            clientScheme: "https"
        )
        defer { harness.finish() }
        let held = try #require(store)
        let key = try value(
            of: APIKeyService(store: held, hash: harness.context.authenticator.hash(apiKey:)).create(
                name: "hsts",
                scopes: ["read:databases"],
                expiresInSeconds: nil,
                test: false,
                owner: "dave",
                grantor: nil,
                now: harness.clock.now
            ),
            on: harness.loop
        ).key
        try harness.send("GET /v1/databases HTTP/1.1\r\nHost: gw.example\r\nAuthorization: Bearer \(key)\r\n\r\n")
        #expect(held.waiting == 1)
        // The reload turns HSTS on while the request waits.
        var reloaded = Self.new(harness.context.configuration)
        reloaded.server.tls?.hsts = true
        reloaded.server.tls?.hstsMaxAgeSeconds = 600
        harness.apply(reloaded)
        held.release()
        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        let response = try #require(try harness.clientResponses().first)
        #expect(response.statusCode == 200)
        #expect(!response.has("Strict-Transport-Security"), "HSTS was off when the head arrived")

        try harness.send("GET /v1/databases HTTP/1.1\r\nHost: gw.example\r\n\r\n")
        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", on: 1)
        let next = try #require(try harness.clientResponses().first)
        #expect(next.values("Strict-Transport-Security") == ["max-age=600"])
    }
}
