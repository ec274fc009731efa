import GatewayConfig
import GatewayCore
import GatewayProxy
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

/// Findings of the adversarial review on the request side: pipelined responses that were
/// lost behind a refused request, unfiltered request trailers, method-override headers,
/// `100 Continue` before the decision, unbounded chunk extensions and an encoded `;`.
@Suite struct RequestHardeningTests {
    /// GET is open; everything else needs a credential, which these tests never send.
    private static func guardedRoutes(_ configuration: inout GatewayConfiguration) {
        configuration.routes = [
            RouteSettings(method: "GET", path: "/open/**", scopes: [], isPublic: true),
            RouteSettings(method: "POST", path: "/open/**", scopes: [], isPublic: true),
            RouteSettings(method: nil, path: "/**", scopes: ["admin"]),
        ]
    }

    private static let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    @Test func responseOfAPipelinedRequestSurvivesALaterRefusal() throws {
        let harness = try ProxyHarness(Self.guardedRoutes)
        defer { harness.finish() }
        let refused =
            "POST /secret HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer nope\r\nContent-Length: 50\r\n\r\n"
            + String(repeating: "x", count: 50)
        try harness.send(
            "GET /open/a HTTP/1.1\r\nHost: g\r\n\r\n" + refused + "GET /open/b HTTP/1.1\r\nHost: g\r\n\r\n"
        )
        #expect(try harness.upstreamRequests().map(\.startLine) == ["GET /open/a HTTP/1.1"])
        try harness.respond(Self.ok)
        let responses = try harness.clientResponses()
        #expect(responses.map(\.statusCode) == [200, 401])
        #expect(responses.last?.values("Connection") == ["close"])
        #expect(!harness.client.isActive)
        #expect(harness.upstreamCalls == 1)
    }

    @Test func threePipelinedResponsesThenTheRefusal() throws {
        let harness = try ProxyHarness(Self.guardedRoutes)
        defer { harness.finish() }
        let get = "GET /open/a HTTP/1.1\r\nHost: g\r\n\r\n"
        let refused = "POST /secret HTTP/1.1\r\nHost: g\r\nContent-Length: 5\r\n\r\nhello"
        try harness.send(get + get + get + refused + get)
        for _ in 0..<3 {
            #expect(try harness.upstreamRequests().count == 1)
            try harness.respond(Self.ok)
        }
        let responses = try harness.clientResponses()
        #expect(responses.map(\.statusCode) == [200, 200, 200, 401])
        #expect(responses.last?.values("Connection") == ["close"])
        #expect(!harness.client.isActive)
    }

    @Test func forwardedPostIsAnsweredBeforeTheRefusalThatFollows() throws {
        let harness = try ProxyHarness(Self.guardedRoutes)
        defer { harness.finish() }
        try harness.send(
            "POST /open/run HTTP/1.1\r\nHost: g\r\nContent-Length: 2\r\n\r\nhi"
                + "POST /secret HTTP/1.1\r\nHost: g\r\nContent-Length: 5\r\n\r\nhello"
                + "GET /open/b HTTP/1.1\r\nHost: g\r\n\r\n"
        )
        #expect(try harness.upstreamRequests().first?.bodyText == "hi")
        try harness.respond("HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone")
        let responses = try harness.clientResponses()
        #expect(responses.map(\.statusCode) == [201, 401])
        #expect(responses.first?.bodyText == "done")
        #expect(!harness.client.isActive)
    }

    @Test func requestTrailersNeverReachTheUpstream() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(
            "POST /v1/x HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
                + "X-DBAudit-Subject: admin-user\r\nX-DBAudit-Scopes: admin\r\nX-Forwarded-For: 6.6.6.6\r\n"
                + "Authorization: Bearer stolen\r\n\r\n"
        )
        let wire = String(decoding: try harness.upstreamBytes(), as: UTF8.self)
        #expect(wire.contains("hello"))
        #expect(wire.hasSuffix("0\r\n\r\n"), "\(wire)")
        #expect(!wire.contains("admin-user"))
        #expect(!wire.contains("6.6.6.6"))
        #expect(!wire.contains("stolen"))
    }

    @Test func responseTrailersLoseCookiesAndIdentityFields() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send("GET /v1/x HTTP/1.1\r\nHost: g\r\nTE: trailers\r\n\r\n")
        try harness.respond(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
                + "Set-Cookie: session=stolen\r\nX-DBAudit-Subject: admin-user\r\nX-Checksum: abc\r\n\r\n"
        )
        let wire = String(decoding: try harness.clientBytes(), as: UTF8.self)
        #expect(wire.contains("X-Checksum: abc"), "\(wire)")
        #expect(!wire.lowercased().contains("set-cookie"))
        #expect(!wire.contains("admin-user"))
    }

    @Test func methodOverrideHeadersAreStripped() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(
            "GET /v1/x HTTP/1.1\r\nHost: g\r\nX-HTTP-Method-Override: DELETE\r\nX-HTTP-Method: DELETE\r\n"
                + "X-Method-Override: DELETE\r\nX-Original-URL: /v1/admin\r\nX-Rewrite-URL: /v1/admin\r\nX-Kept: 1\r\n\r\n"
        )
        let request = try #require(try harness.upstreamRequests().first)
        for name in ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "X-Original-URL", "X-Rewrite-URL"]
        {
            #expect(!request.has(name), "\(name) was forwarded")
        }
        #expect(request.values("X-Kept") == ["1"])
    }

    @Test func methodOverrideHeadersPassWhenTheSwitchAllowsThem() throws {
        let harness = try ProxyHarness { $0.upstream.forwardMethodOverride = true }
        defer { harness.finish() }
        try harness.send("GET /v1/x HTTP/1.1\r\nHost: g\r\nX-HTTP-Method-Override: DELETE\r\n\r\n")
        let request = try #require(try harness.upstreamRequests().first)
        #expect(request.values("X-HTTP-Method-Override") == ["DELETE"])
    }

    @Test func continueIsNotSentBeforeAuthorization() throws {
        let harness = try ProxyHarness(Self.guardedRoutes)
        defer { harness.finish() }
        try harness.send("POST /secret HTTP/1.1\r\nHost: g\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        let responses = try harness.clientResponses()
        #expect(responses.map(\.statusCode) == [401])
        #expect(responses.first?.values("Connection") == ["close"])
        #expect(harness.upstreamCalls == 0)
    }

    @Test func continueIsSentOnceAuthorized() throws {
        let harness = try ProxyHarness(Self.guardedRoutes)
        defer { harness.finish() }
        try harness.send("POST /open/x HTTP/1.1\r\nHost: g\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        #expect(try harness.clientResponses().map(\.statusCode) == [100])
        try harness.send("hi")
        #expect(try harness.upstreamRequests().first?.bodyText == "hi")
    }

    @Test func oversizedChunkExtensionIsRefused() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send("POST /v1/x HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=")
        let piece = String(repeating: "e", count: 16 * 1024)
        for _ in 0..<64 where harness.client.isActive {
            try harness.send(piece)
        }
        let response = try #require(try harness.clientResponses().first)
        #expect(response.statusCode == 400)
        #expect(jsonMember("error", in: response.bodyText) == "invalid_request")
        #expect(!harness.client.isActive)
    }

    @Test func shortChunkExtensionsStillPass() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(
            "POST /v1/x HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n5;name=\"value\"\r\nhello\r\n3;a;b=c\r\nabc\r\n0;last\r\n\r\n"
        )
        #expect(try harness.upstreamRequests().first?.bodyText == "helloabc")
        try harness.respond(Self.ok)
        #expect(try harness.clientResponses().map(\.statusCode) == [200])
    }

    @Test func encodedSemicolonInThePathIsRefused() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send("GET /v1/admin%3Bx/users HTTP/1.1\r\nHost: g\r\n\r\n")
        let response = try #require(try harness.clientResponses().first)
        #expect(response.statusCode == 400)
        #expect(harness.upstreamCalls == 0)
    }
}
