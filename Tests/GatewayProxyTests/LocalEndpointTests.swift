import GatewayConfig
import GatewayCore
import NIOCore
import NIOEmbedded
import Testing

@testable import GatewayProxy

/// A local endpoint that records what it was handed and answers what the test says.
private final class RecordingEndpoint: LocalEndpoint {
    var requests: [LocalRequest] = []
    var answer: (LocalRequest) -> Result<LocalResponse, GatewayError> = { _ in
        .success(LocalResponse(status: 200, contentType: "text/html; charset=utf-8", body: "<p>hi</p>"))
    }
    let maximumBodyBytes: Int64 = 64
    var routeLabel: String { "builtin recording" }

    func handles(_ normalizedPath: String) -> Bool { normalizedPath.hasPrefix("/oauth/") }

    func handle(_ request: LocalRequest, eventLoop: any EventLoop) -> EventLoopFuture<LocalResponse> {
        self.requests.append(request)
        switch self.answer(request) {
        case .success(let response): return eventLoop.makeSucceededFuture(response)
        case .failure(let error): return eventLoop.makeFailedFuture(error)
        }
    }

    func errorResponse(_ error: GatewayError, request: LocalRequest) -> LocalResponse {
        LocalResponse(status: error.status, contentType: "text/html; charset=utf-8", body: "<h1>\(error.code)</h1>")
    }
}

@Suite struct LocalEndpointHookTests {
    private func harness(_ endpoint: RecordingEndpoint) throws -> ProxyHarness {
        let harness = try ProxyHarness { configuration in
            // Everything else is refused: a request that reached the upstream would say so.
            configuration.routes = []
        }
        harness.apply(harness.context.configuration, localEndpoints: [endpoint])
        return harness
    }

    @Test func requestReachesTheEndpointWithQueryHeadersBodyAndAddress() throws {
        let endpoint = RecordingEndpoint()
        let harness = try self.harness(endpoint)
        defer { harness.finish() }

        try harness.send(
            "POST /oauth/token?x=1%202 HTTP/1.1\r\nHost: gw\r\nAuthorization: Basic YTpi\r\n"
                + "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 9\r\n\r\ngrant=abc"
        )

        let responses = try harness.clientResponses()
        #expect(harness.upstreamCalls == 0)
        #expect(responses.count == 1)
        #expect(responses.first?.statusCode == 200)
        #expect(responses.first?.values("content-type") == ["text/html; charset=utf-8"])
        #expect(responses.first?.values("cache-control") == ["no-store"])
        #expect(responses.first?.bodyText == "<p>hi</p>")
        let request = try #require(endpoint.requests.first)
        #expect(request.method == "POST")
        #expect(request.normalizedPath == "/oauth/token")
        #expect(request.query == "x=1%202")
        #expect(request.values(of: "AUTHORIZATION") == ["Basic YTpi"])
        #expect(request.body == Array("grant=abc".utf8))
        #expect(request.clientAddress == "192.0.2.10")
        #expect(request.isTLS == false)
        #expect(responses.first?.values("x-request-id") == [request.requestID])
    }

    @Test func endpointHeadersAndCacheControlAreKept() throws {
        let endpoint = RecordingEndpoint()
        endpoint.answer = { _ in
            .success(
                LocalResponse(
                    status: 303,
                    contentType: "text/html; charset=utf-8",
                    body: "",
                    headers: [
                        .init("Location", "https://app.example/cb?code=x"),
                        .init("Cache-Control", "public, max-age=60"),
                    ]
                )
            )
        }
        let harness = try self.harness(endpoint)
        defer { harness.finish() }

        try harness.send("GET /oauth/authorize HTTP/1.1\r\nHost: gw\r\n\r\n")

        let response = try #require(try harness.clientResponses().first)
        #expect(response.statusCode == 303)
        #expect(response.values("location") == ["https://app.example/cb?code=x"])
        #expect(response.values("cache-control") == ["public, max-age=60"])
    }

    @Test func failuresAndRefusalsBeforeTheEndpointAreRenderedByIt() throws {
        let endpoint = RecordingEndpoint()
        endpoint.answer = { _ in .failure(GatewayError(status: 403, code: "csrf_failed", description: "no")) }
        let harness = try self.harness(endpoint)
        defer { harness.finish() }

        try harness.send("POST /oauth/authorize/consent HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n")
        let failed = try #require(try harness.clientResponses().first)
        #expect(failed.statusCode == 403)
        #expect(failed.bodyText == "<h1>csrf_failed</h1>")
        #expect(failed.values("content-type") == ["text/html; charset=utf-8"])

        // Over the endpoint's own body limit: refused before it runs, shown its way.
        try harness.send("POST /oauth/authorize/login HTTP/1.1\r\nHost: gw\r\nContent-Length: 65\r\n\r\n")
        let tooLarge = try #require(try harness.clientResponses().first)
        #expect(tooLarge.statusCode == 413)
        #expect(tooLarge.values("content-type") == ["text/html; charset=utf-8"])
        #expect(endpoint.requests.count == 1)
    }

    /// The strict parser refuses before routing; once it read the request line, the refusal
    /// is still the endpoint's to render, under the client's request id.
    @Test func parserRefusalsAfterTheRequestLineAreRenderedByTheEndpoint() throws {
        let endpoint = RecordingEndpoint()
        let harness = try self.harness(endpoint)
        defer { harness.finish() }

        try harness.send("GET /oauth/authorize?x=1 HTTP/1.1\r\nX-Request-Id: rid-7\r\nHost: a\r\nHost: b\r\n\r\n")
        let refused = try #require(try harness.clientResponses().first)
        #expect(refused.statusCode == 400)
        #expect(refused.bodyText == "<h1>invalid_request</h1>")
        #expect(refused.values("content-type") == ["text/html; charset=utf-8"])
        #expect(refused.values("x-request-id") == ["rid-7"])
        #expect(refused.values("connection") == ["close"])
        #expect(endpoint.requests.isEmpty)
        #expect(!harness.client.isActive)

        // Two request ids: neither is believed.
        let again = try self.harness(endpoint)
        defer { again.finish() }
        try again.send(
            "GET /oauth/authorize HTTP/1.1\r\nX-Request-Id: one\r\nX-Request-Id: two\r\nHost: a\r\nHost: b\r\n\r\n"
        )
        let minted = try #require(try again.clientResponses().first)
        #expect(minted.bodyText == "<h1>invalid_request</h1>")
        #expect(minted.values("x-request-id").first?.count == 32)
    }

    @Test func parserRefusalsElsewhereOrInTheRequestLineAreJSON() throws {
        for raw in [
            "GET /v1/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET /oauth/authorize#x HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            let endpoint = RecordingEndpoint()
            let harness = try self.harness(endpoint)
            defer { harness.finish() }
            try harness.send(raw)
            let refused = try #require(try harness.clientResponses().first)
            #expect(refused.statusCode == 400)
            #expect(refused.values("content-type") == ["application/json"], "\(raw)")
            #expect(endpoint.requests.isEmpty)
        }
    }

    @Test func pathsTheEndpointDoesNotHandleAreNotItsConcern() throws {
        let endpoint = RecordingEndpoint()
        let harness = try self.harness(endpoint)
        defer { harness.finish() }

        try harness.send("GET /v1/databases HTTP/1.1\r\nHost: gw\r\n\r\n")
        let response = try #require(try harness.clientResponses().first)
        #expect(response.statusCode == 404)
        #expect(endpoint.requests.isEmpty)
    }

    @Test func reloadPutsTheNewEndpointsInForce() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        #expect(harness.context.localEndpoints.isEmpty)
        let endpoint = RecordingEndpoint()
        harness.apply(harness.context.configuration, localEndpoints: [endpoint])
        #expect(harness.context.localEndpoints.count == 1)
        try harness.send("GET /oauth/thing HTTP/1.1\r\nHost: gw\r\n\r\n")
        #expect(endpoint.requests.count == 1)
        #expect(harness.upstreamCalls == 0)
        harness.apply(harness.context.configuration)
        #expect(harness.context.localEndpoints.isEmpty)
    }
}
