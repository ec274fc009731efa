import GatewayCore
import GatewayHTTP1
import NIOCore
import NIOHTTP1
import Testing

@testable import GatewayProxy

private let context = ForwardingContext(
    requestID: "gw-req-1",
    clientAddress: "192.0.2.10",
    clientScheme: "https",
    upstreamAuthority: "backend.internal:9000",
    preserveHost: false
)

private func request(
    _ method: HTTPMethod,
    _ uri: String,
    version: HTTPVersion = .http1_1,
    _ headers: [(String, String)]
) -> HTTPRequestHead {
    HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(headers))
}

private func request(_ headers: [(String, String)]) -> HTTPRequestHead {
    request(.GET, "/v1/databases?limit=5", headers)
}

private func names(_ headers: HTTPHeaders) -> [String] {
    headers.map { $0.name.lowercased() }
}

/// `head` as a client sends it, read by the client connection's parser (which must accept it).
private func parsed(_ head: HTTPRequestHead, sourceLocation: SourceLocation = #_sourceLocation) -> HTTP1RequestHead? {
    var text = "\(head.method.rawValue) \(head.uri) HTTP/1.\(head.version.minor)\r\n"
    for (name, value) in head.headers { text += "\(name): \(value)\r\n" }
    var parser = HTTP1RequestParser(limits: ClientRequestDecoder.limits(maxHeaderBytes: 8192))
    parser.feed(ByteBuffer(string: text + "\r\n"))
    guard case .head(let parsed) = parser.next() else {
        Issue.record("the parser refused \(text.debugDescription)", sourceLocation: sourceLocation)
        return nil
    }
    return parsed
}

extension ForwardingRules {
    /// The upstream head `writeUpstreamRequestHead` writes for `head` (sent by a client as
    /// such), read back; the bytes written must pass the strict parser themselves.
    fileprivate static func upstreamRequestHead(
        _ head: HTTPRequestHead,
        framing: HTTP1BodyFraming,
        context: ForwardingContext,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> HTTPRequestHead {
        guard let client = parsed(head, sourceLocation: sourceLocation) else {
            return HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")
        }
        var buffer = ByteBuffer()
        Self.writeUpstreamRequestHead(client, framing: framing, context: context, into: &buffer)
        var strict = HTTP1RequestParser(limits: ClientRequestDecoder.limits(maxHeaderBytes: 8192))
        strict.feed(buffer)
        if case .error(let error) = strict.next() {
            Issue.record("the upstream head is refused: \(error)", sourceLocation: sourceLocation)
        }
        let text = String(buffer: buffer)
        #expect(text.hasSuffix("\r\n\r\n"), sourceLocation: sourceLocation)
        // "\r\n" is one Character.
        var lines = text.dropLast(2).components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ")
        var headers = HTTPHeaders()
        for line in lines {
            let parts = line.split(separator: ":", maxSplits: 1)
            headers.add(name: String(parts[0]), value: parts.count == 2 ? String(parts[1].dropFirst()) : "")
        }
        return HTTPRequestHead(
            version: requestLine[2] == "HTTP/1.1" ? .http1_1 : .http1_0,
            method: HTTPMethod(rawValue: String(requestLine[0])),
            uri: String(requestLine[1]),
            headers: headers
        )
    }

    fileprivate static func requestID(for head: HTTPRequestHead, generator: inout RequestIDGenerator) -> String {
        var head = head
        head.headers.add(name: "Host", value: "g")
        guard let client = parsed(head) else { return "" }
        return Self.requestID(for: client, generator: &generator)
    }
}

@Suite struct UpstreamRequestHeadTests {
    @Test func keepsEndToEndHeadersInOrderAndMethodURI() {
        let out = ForwardingRules.upstreamRequestHead(
            request(
                .GET,
                "/v1/x?y=1",
                [
                    ("Host", "gw.example"), ("Accept", "application/json"), ("Authorization", "Bearer t"),
                    ("Accept", "text/plain"), ("X-Custom", "1"),
                ]
            ),
            framing: .none,
            context: context
        )
        #expect(out.method == .GET)
        #expect(out.uri == "/v1/x?y=1")
        #expect(out.version == .http1_1)
        #expect(out.headers["Accept"] == ["application/json", "text/plain"])
        #expect(out.headers["Authorization"] == ["Bearer t"])
        #expect(out.headers["X-Custom"] == ["1"])
        #expect(Array(names(out.headers).prefix(4)) == ["accept", "authorization", "accept", "x-custom"])
    }

    @Test func removesHopByHopHeaders() {
        let out = ForwardingRules.upstreamRequestHead(
            request([
                ("Host", "gw.example"),
                ("Connection", "keep-alive, Upgrade"),
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Connection", "keep-alive"),
                ("TE", "trailers"),
                ("Trailer", "X-Checksum"),
                ("Upgrade", "websocket"),
                ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
                ("Proxy-Authenticate", "Basic"),
                ("Accept", "*/*"),
            ]),
            framing: .none,
            context: context
        )
        for name in [
            "connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "proxy-authorization",
            "proxy-authenticate", "transfer-encoding", "content-length",
        ] {
            #expect(!out.headers.contains(name: name), "\(name) was forwarded")
        }
        #expect(out.headers["Accept"] == ["*/*"])
    }

    @Test func removesHeadersNamedInConnection() {
        let out = ForwardingRules.upstreamRequestHead(
            request([
                ("Host", "gw.example"),
                ("Connection", "close, X-Hop-One"),
                ("connection", " x-hop-two ,Keep-Alive"),
                ("X-Hop-One", "1"),
                ("X-HOP-TWO", "2"),
                ("X-Hop-Three", "3"),
            ]),
            framing: .none,
            context: context
        )
        #expect(!out.headers.contains(name: "X-Hop-One"))
        #expect(!out.headers.contains(name: "X-Hop-Two"))
        #expect(out.headers["X-Hop-Three"] == ["3"])
        #expect(!out.headers.contains(name: "Connection"))
    }

    @Test func replacesGatewayOwnedHeaders() {
        let out = ForwardingRules.upstreamRequestHead(
            request([
                ("Host", "gw.example:8443"),
                ("X-DBAudit-Subject", "admin"),
                ("x-dbaudit-scopes", "*"),
                ("X-DBAUDIT-CREDENTIAL", "api_key"),
                ("X-DbAudit-Key-Id", "k1"),
                ("X-Forwarded-For", "6.6.6.6"),
                ("x-forwarded-proto", "http"),
                ("X-Forwarded-Host", "evil.example"),
                ("Forwarded", "for=6.6.6.6;proto=http"),
                ("X-Real-IP", "6.6.6.6"),
                ("X-Request-Id", "client-chosen"),
                ("x-request-id", "second"),
                ("Accept", "*/*"),
            ]),
            framing: .none,
            context: context
        )
        #expect(!names(out.headers).contains { $0.hasPrefix("x-dbaudit-") })
        #expect(!out.headers.contains(name: "Forwarded"))
        #expect(!out.headers.contains(name: "X-Real-IP"))
        #expect(out.headers["X-Request-Id"] == ["gw-req-1"])
        #expect(out.headers["X-Forwarded-For"] == ["192.0.2.10"])
        #expect(out.headers["X-Forwarded-Proto"] == ["https"])
        #expect(out.headers["X-Forwarded-Host"] == ["gw.example:8443"])
        #expect(out.headers["Accept"] == ["*/*"])
    }

    @Test func dbauditPrefixNeedsTheDash() {
        let out = ForwardingRules.upstreamRequestHead(
            request([("Host", "g"), ("X-DBAuditor", "kept"), ("X-DBAudit-", "removed")]),
            framing: .none,
            context: context
        )
        #expect(out.headers["X-DBAuditor"] == ["kept"])
        #expect(!out.headers.contains(name: "X-DBAudit-"))
    }

    @Test func hostIsReplacedByUpstreamAuthority() {
        let out = ForwardingRules.upstreamRequestHead(
            request([("Host", "gw.example")]),
            framing: .none,
            context: context
        )
        #expect(out.headers["Host"] == ["backend.internal:9000"])
        #expect(out.headers["X-Forwarded-Host"] == ["gw.example"])
    }

    @Test func preserveHostKeepsClientHost() {
        var preserving = context
        preserving.preserveHost = true
        let out = ForwardingRules.upstreamRequestHead(
            request([("host", "gw.example:8080")]),
            framing: .none,
            context: preserving
        )
        #expect(out.headers["Host"] == ["gw.example:8080"])
        #expect(out.headers["X-Forwarded-Host"] == ["gw.example:8080"])
    }

    @Test func http10WithoutHostGetsUpstreamAuthorityAndNoForwardedHost() {
        var preserving = context
        preserving.preserveHost = true
        let out = ForwardingRules.upstreamRequestHead(
            request(.GET, "/", version: .http1_0, [("Accept", "*/*")]),
            framing: .none,
            context: preserving
        )
        #expect(out.version == .http1_1)
        #expect(out.headers["Host"] == ["backend.internal:9000"])
        #expect(!out.headers.contains(name: "X-Forwarded-Host"))
    }

    // MARK: framing

    @Test func contentLengthFramingReplacesClientFraming() {
        let out = ForwardingRules.upstreamRequestHead(
            request(.POST, "/v1/x", [("Host", "g"), ("Content-Length", "5")]),
            framing: .contentLength(5),
            context: context
        )
        #expect(out.headers["Content-Length"] == ["5"])
        #expect(!out.headers.contains(name: "Transfer-Encoding"))
        let chunked = ForwardingRules.upstreamRequestHead(
            request(.POST, "/v1/x", [("Host", "g"), ("Transfer-Encoding", "chunked")]),
            framing: .contentLength(5),
            context: context
        )
        #expect(chunked.headers["Content-Length"] == ["5"])
        #expect(!chunked.headers.contains(name: "Transfer-Encoding"))
    }

    @Test func chunkedFramingReplacesClientFraming() {
        let out = ForwardingRules.upstreamRequestHead(
            request(.PUT, "/v1/x", [("Host", "g"), ("Content-Length", "12")]),
            framing: .chunked,
            context: context
        )
        #expect(out.headers["Transfer-Encoding"] == ["chunked"])
        #expect(!out.headers.contains(name: "Content-Length"))
    }

    @Test(arguments: [HTTPMethod.POST, .PUT, .PATCH])
    func bodylessWriteMethodsGetContentLengthZero(_ method: HTTPMethod) {
        let out = ForwardingRules.upstreamRequestHead(
            request(method, "/x", [("Host", "g"), ("Content-Length", "0")]),
            framing: .none,
            context: context
        )
        #expect(out.headers["Content-Length"] == ["0"])
        #expect(!out.headers.contains(name: "Transfer-Encoding"))
    }

    @Test(arguments: [HTTPMethod.GET, .HEAD, .DELETE, .OPTIONS])
    func bodylessReadMethodsGetNoFramingHeaders(_ method: HTTPMethod) {
        let out = ForwardingRules.upstreamRequestHead(
            request(method, "/x", [("Host", "g"), ("Content-Length", "0")]),
            framing: .none,
            context: context
        )
        #expect(!out.headers.contains(name: "Content-Length"))
        #expect(!out.headers.contains(name: "Transfer-Encoding"))
    }

    @Test(arguments: [[("Content-Length", "3")], [("transfer-encoding", "chunked")], [("Content-Length", "0")]])
    func neverBothFramingHeaders(_ framingFields: [(String, String)]) {
        let client: [(String, String)] = [("Host", "g")] + framingFields
        for framing in [HTTP1BodyFraming.none, .contentLength(3), .chunked] {
            for method in [HTTPMethod.GET, .POST] {
                let out = ForwardingRules.upstreamRequestHead(
                    request(method, "/", client),
                    framing: framing,
                    context: context
                )
                let both =
                    out.headers.contains(name: "Content-Length") && out.headers.contains(name: "Transfer-Encoding")
                #expect(!both, "\(method) \(framing)")
                #expect(out.headers["Content-Length"].count <= 1)
            }
        }
    }
}

@Suite struct RequestIDSelectionTests {
    private static let firstMinted = "0000000000002d000000000000000000"

    private func pick(_ values: [String]) -> (String, RequestIDGenerator) {
        var generator = RequestIDGenerator(seed: (1, 2, 3, 4))
        let id = ForwardingRules.requestID(for: request(values.map { ("X-Request-Id", $0) }), generator: &generator)
        return (id, generator)
    }

    @Test func keepsOneValidClientID() {
        let (id, generator) = self.pick(["trace-42:abc@x"])
        #expect(id == "trace-42:abc@x")
        // No id was drawn from the generator.
        var copy = generator
        #expect(copy.next() == Self.firstMinted)
    }

    @Test func headerNameIsCaseInsensitive() {
        var generator = RequestIDGenerator(seed: (1, 2, 3, 4))
        #expect(ForwardingRules.requestID(for: request([("x-REQUEST-id", "abc")]), generator: &generator) == "abc")
    }

    @Test func mintsWhenAbsent() {
        #expect(self.pick([]).0 == Self.firstMinted)
    }

    @Test(arguments: [["a b"], [String(repeating: "a", count: 129)], ["abc", "def"], ["abc", "abc"], [""], ["x\"y"]])
    func mintsForInvalidOrRepeatedIDs(_ values: [String]) {
        let id = self.pick(values).0
        #expect(id == Self.firstMinted)
    }

    @Test func keeps128CharacterID() {
        let value = String(repeating: "b", count: 128)
        #expect(self.pick([value]).0 == value)
    }
}

/// Every `X-Forwarded-*` header is gateway-owned: none sent by the client reaches the
/// upstream (an `X-Forwarded-Prefix` could otherwise steer upstream routing).
@Suite struct ForwardingRulesGatewayOwnedHeaderTests {
    @Test func otherXForwardedHeadersFromTheClientAreRemoved() {
        let out = ForwardingRules.upstreamRequestHead(
            request([
                ("Host", "g"), ("X-Forwarded-Port", "443"), ("X-Forwarded-Prefix", "/admin"),
                ("X-Forwarded-Server", "evil"),
            ]),
            framing: .none,
            context: context
        )
        #expect(!out.headers.contains(name: "X-Forwarded-Port"))
        #expect(!out.headers.contains(name: "X-Forwarded-Prefix"))
        #expect(!out.headers.contains(name: "X-Forwarded-Server"))
    }

    /// CGI-style upstreams (WSGI, Rack, PHP) read `X_DBAudit_Subject` and `X-DBAudit-Subject`
    /// as the same variable: an underscore spelling of a gateway-owned name is that name.
    @Test func underscoreSpellingsOfGatewayOwnedHeadersAreRemoved() {
        let out = ForwardingRules.upstreamRequestHead(
            request([
                ("Host", "g"), ("X-DBAudit_Subject", "admin"), ("X_DBAUDIT_SCOPES", "*"),
                ("x_forwarded_for", "6.6.6.6"), ("X-Forwarded_Proto", "http"), ("X_Request_Id", "forged"),
                ("X_Real_IP", "6.6.6.6"), ("Content_Length", "5"), ("Transfer_Encoding", "chunked"),
                ("X_HTTP_Method_Override", "DELETE"), ("My_Header", "kept"), ("X_DBAuditor", "kept"),
            ]),
            framing: .none,
            context: context
        )
        let forwarded = names(out.headers).filter { $0.contains("_") }
        #expect(forwarded == ["my_header", "x_dbauditor"])
    }
}

@Suite struct IdentityHeaderTests {
    @Test func aJWTPrincipalNamesItsIssuerAndAClientForgedIssuerIsDropped() {
        var principal = Principal(subject: "usr_1", kind: .jwt, scopes: ["read:databases"])
        principal.issuer = "https://idp.example\r\nX-Evil: 1"
        let forwarding = ForwardingContext(
            requestID: "r",
            clientAddress: "192.0.2.10",
            clientScheme: "https",
            upstreamAuthority: "b:9000",
            preserveHost: false,
            principal: principal
        )
        let head = ForwardingRules.upstreamRequestHead(
            request([("Host", "g"), ("X-DBAudit-Issuer", "forged")]),
            framing: .none,
            context: forwarding
        )
        #expect(head.headers["X-DBAudit-Issuer"] == ["https://idp.example  X-Evil: 1"])
        #expect(head.headers["X-DBAudit-Subject"] == ["usr_1"])
        #expect(head.headers["X-DBAudit-Credential"] == ["jwt"])
    }

    @Test func anAPIKeyPrincipalHasNoIssuerHeader() {
        let forwarding = ForwardingContext(
            requestID: "r",
            clientAddress: "192.0.2.10",
            clientScheme: "https",
            upstreamAuthority: "b:9000",
            preserveHost: false,
            principal: Principal(subject: "ci", kind: .apiKey, scopes: [], keyID: "key_1")
        )
        let head = ForwardingRules.upstreamRequestHead(request([("Host", "g")]), framing: .none, context: forwarding)
        #expect(head.headers["X-DBAudit-Issuer"].isEmpty)
        #expect(head.headers["X-DBAudit-Key-Id"] == ["key_1"])
    }
}

@Suite struct GatewayCookieTests {
    @Test func theGatewaysOwnCookiesNeverReachTheUpstream() {
        let head = ForwardingRules.upstreamRequestHead(
            request(
                .GET,
                "/v1/x",
                [
                    ("Host", "g"),
                    ("Cookie", "theme=dark; dbgw_session=s3cret; __Host-dbgw_browser=b; app=1"),
                    ("Cookie", "__Host-dbgw_reveal=r"),
                ]
            ),
            framing: .none,
            context: context
        )
        #expect(head.headers["cookie"] == ["theme=dark; app=1"])
    }
}
