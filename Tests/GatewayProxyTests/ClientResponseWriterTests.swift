import GatewayCore
import GatewayHTTP1
import NIOCore
import NIOHTTP1
import Testing

@testable import GatewayProxy

/// The bytes `ClientResponseWriter` makes, parsed back as a client would read them.
private struct Written {
    let statusLine: String
    let fields: [(name: String, value: String)]
    let rest: String

    init(_ buffer: ByteBuffer) {
        let text = String(buffer: buffer)
        let end = text.range(of: "\r\n\r\n")!
        var lines = text[..<end.lowerBound].components(separatedBy: "\r\n")
        self.statusLine = lines.removeFirst()
        self.fields = lines.map { line in
            let colon = line.firstIndex(of: ":")!
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        self.rest = String(text[end.upperBound...])
    }

    func values(_ name: String) -> [String] {
        self.fields.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }
}

private func upstreamHead(_ text: String, method: HTTP1Method = .GET) throws -> HTTP1ResponseHead {
    var parser = HTTP1ResponseHeadParser(limits: HTTP1ParserLimits(maxHeaderBytes: 4096))
    var buffer = ByteBuffer(string: text)
    return try #require(try parser.parse(&buffer, requestMethod: method))
}

private func edits(
    minor: Int = 1,
    head: Bool = false,
    id: String = "rid",
    keepAlive: Bool = true,
    rateLimit: [(name: String, value: String)] = [],
    hsts: String? = nil
) -> ClientResponseWriter.Edits {
    ClientResponseWriter.Edits(
        requestMinorVersion: minor,
        isHEAD: head,
        requestID: id,
        keepAlive: keepAlive,
        rateLimitHeaders: rateLimit,
        strictTransportSecurity: hsts
    )
}

private let allocator = ByteBufferAllocator()

/// The forwarded head (what `ForwardingRules.clientResponseHead` and NIO's encoder did).
@Suite struct ClientResponseWriterHeadTests {
    private let upstream = """
        HTTP/1.1 201 Created\r
        Content-Type: application/json\r
        Connection: keep-alive, X-Internal\r
        Keep-Alive: timeout=5\r
        Upgrade: h2c\r
        Trailer: X-Sum\r
        Proxy-Authenticate: Basic\r
        Proxy-Connection: keep-alive\r
        TE: trailers\r
        X-Internal: secret\r
        X-Request-Id: upstream-id\r
        Set-Cookie: a=1\r
        Set-Cookie: b=2\r
        Content-Length: 10\r
        \r

        """

    private func write(
        _ text: String,
        _ edits: ClientResponseWriter.Edits
    ) throws -> (Written, Bool, ClientResponseWriter) {
        var writer = ClientResponseWriter()
        let (bytes, keepAlive) = writer.forwardedHead(try upstreamHead(text), edits, allocator: allocator)
        return (Written(bytes), keepAlive, writer)
    }

    @Test func removesHopByHopAndNominatedHeaders() throws {
        let (out, _, _) = try self.write(self.upstream, edits())
        for name in [
            "connection", "keep-alive", "transfer-encoding", "upgrade", "trailer", "proxy-authenticate",
            "proxy-connection", "te", "x-internal",
        ] {
            #expect(out.values(name).isEmpty, "\(name) reached the client")
        }
        #expect(out.values("Content-Type") == ["application/json"])
        #expect(out.values("Set-Cookie") == ["a=1", "b=2"])
        #expect(out.values("Content-Length") == ["10"])
        #expect(out.statusLine == "HTTP/1.1 201 Created")
    }

    @Test func upstreamFieldLinesAreCopiedAsReceived() throws {
        let (out, _, _) = try self.write(
            "HTTP/1.1 200 OK\r\nX-Odd:   spaced value \r\nContent-Length: 0\r\n\r\n",
            edits()
        )
        #expect(out.fields.first?.name == "X-Odd")
        var writer = ClientResponseWriter()
        let bytes = writer.forwardedHead(
            try upstreamHead("HTTP/1.1 200 OK\r\nX-Odd:   spaced value \r\nContent-Length: 0\r\n\r\n"),
            edits(),
            allocator: allocator
        ).bytes
        #expect(String(buffer: bytes).contains("\r\nX-Odd:   spaced value \r\n"))
    }

    @Test func setsTheGatewayRequestID() throws {
        let (out, _, _) = try self.write(self.upstream, edits(id: "rid-7"))
        #expect(out.values("X-Request-Id") == ["rid-7"])
    }

    @Test func http11KeepAliveHasNoConnectionHeader() throws {
        let (out, keepAlive, _) = try self.write(self.upstream, edits())
        #expect(out.values("Connection") == [])
        #expect(keepAlive)
    }

    @Test func closingResponseSaysConnectionClose() throws {
        let (out, keepAlive, _) = try self.write(self.upstream, edits(keepAlive: false))
        #expect(out.values("Connection") == ["close"])
        #expect(!keepAlive)
    }

    @Test func http10KeepAliveSaysKeepAlive() throws {
        let (out, keepAlive, _) = try self.write(self.upstream, edits(minor: 0))
        #expect(out.statusLine == "HTTP/1.0 201 Created")
        #expect(out.values("Connection") == ["keep-alive"])
        #expect(keepAlive)
    }

    @Test func http10ClosingSaysClose() throws {
        let (out, _, _) = try self.write(self.upstream, edits(minor: 0, keepAlive: false))
        #expect(out.values("Connection") == ["close"])
    }

    /// The length the upstream named in `Connection` is gone: an HTTP/1.0 client can only
    /// find the end of the body at the close; an HTTP/1.1 one gets it chunked.
    @Test func http10ResponseWithoutALengthSaysClose() throws {
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: Content-Length\r\n\r\n"
        let (out, keepAlive, writer) = try self.write(text, edits(minor: 0))
        #expect(out.values("Content-Length") == [])
        #expect(out.values("Connection") == ["close"])
        #expect(!keepAlive)
        #expect(writer.bodyFraming == .identity)
        let (http11, keepAlive11, writer11) = try self.write(text, edits())
        #expect(keepAlive11)
        #expect(http11.values("Transfer-Encoding") == ["chunked"])
        #expect(writer11.bodyFraming == .chunked)
    }

    @Test func statusIsKeptAsIs() throws {
        let (out, _, _) = try self.write("HTTP/1.1 299 Odd\r\nContent-Length: 0\r\n\r\n", edits())
        #expect(out.statusLine == "HTTP/1.1 299 Odd")
        let (bare, _, _) = try self.write("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", edits())
        #expect(bare.statusLine == "HTTP/1.1 200 ")
    }

    @Test func anUpstreamCannotSetOrClearAGatewayCookie() throws {
        let text = """
            HTTP/1.1 200 OK\r
            Set-Cookie: __Host-dbgw_session=planted; Path=/; Secure\r
            Set-Cookie: dbgw_browser=x\r
            Set-Cookie: app=1; Path=/\r
            Content-Length: 0\r
            \r

            """
        let (out, _, _) = try self.write(text, edits())
        #expect(out.values("set-cookie") == ["app=1; Path=/"])
    }

    /// A browser trims the name of a `Set-Cookie` pair and sends a nameless cookie's value
    /// alone (RFC 6265 §5.2, §5.4): `dbgw_session =x` and `=dbgw_session=x` both come back as
    /// `dbgw_session=x`, so both set a gateway cookie.
    @Test func anUpstreamCannotSetAGatewayCookieByWhitespaceOrAnEmptyName() throws {
        let text = """
            HTTP/1.1 200 OK\r
            Set-Cookie: dbgw_session =planted; Path=/\r
            Set-Cookie: dbgw_browser\t=planted\r
            Set-Cookie: =dbgw_session=planted; Path=/\r
            Set-Cookie:  = dbgw_reveal=planted\r
            Set-Cookie: dbgw_session\r
            Set-Cookie: =app=1\r
            Set-Cookie: app =2\r
            Content-Length: 0\r
            \r

            """
        let (out, _, _) = try self.write(text, edits())
        #expect(out.values("set-cookie") == ["=app=1", "app =2"])
    }

    @Test func rateLimitAndHSTSReplaceTheUpstreams() throws {
        let text = """
            HTTP/1.1 200 OK\r
            RateLimit: forged\r
            ratelimit-policy: forged\r
            Strict-Transport-Security: max-age=0\r
            Content-Length: 0\r
            \r

            """
        let (out, _, _) = try self.write(
            text,
            edits(rateLimit: [("RateLimit-Policy", "10;w=60"), ("RateLimit", "limit=10")], hsts: "max-age=60")
        )
        #expect(out.values("RateLimit") == ["limit=10"])
        #expect(out.values("RateLimit-Policy") == ["10;w=60"])
        #expect(out.values("Strict-Transport-Security") == ["max-age=60"])
        // Without the gateway's own, the upstream's stay.
        let (plain, _, _) = try self.write(text, edits())
        #expect(plain.values("RateLimit") == ["forged"])
        #expect(plain.values("Strict-Transport-Security") == ["max-age=0"])
    }

    /// No body may follow 204 or 304: their framing fields go (as NIO's encoder removed them).
    @Test func bodilessStatusesLoseTheirFraming() throws {
        for status in ["204 No Content", "304 Not Modified"] {
            let (out, keepAlive, writer) = try self.write(
                "HTTP/1.1 \(status)\r\nContent-Length: 9\r\nETag: \"x\"\r\n\r\n",
                edits()
            )
            #expect(out.values("Content-Length") == [])
            #expect(out.values("Transfer-Encoding") == [])
            #expect(out.values("ETag") == ["\"x\""])
            #expect(keepAlive)
            #expect(writer.bodyFraming == .none)
        }
    }
}

/// Bodies, ends, HEAD and the gateway's own responses.
@Suite struct ClientResponseWriterBodyTests {
    private func body(_ writer: ClientResponseWriter, _ text: String) -> String {
        var out = ""
        writer.body(ByteBuffer(string: text), allocator: allocator) { out += String(buffer: $0) }
        return out
    }

    @Test func chunkedWhenTheUpstreamGaveNoLength() throws {
        var writer = ClientResponseWriter()
        let head = try upstreamHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n")
        let (bytes, _) = writer.forwardedHead(head, edits(), allocator: allocator)
        #expect(Written(bytes).values("Transfer-Encoding") == ["chunked"])
        #expect(self.body(writer, "hello") == "5\r\nhello\r\n")
        #expect(self.body(writer, "") == "")
        #expect(
            self.body(writer, String(repeating: "z", count: 26)) == "1a\r\n" + String(repeating: "z", count: 26)
                + "\r\n"
        )
        #expect(writer.end(trailers: nil, allocator: allocator).map { String(buffer: $0) } == "0\r\n\r\n")
        #expect(writer.bodyFraming == .none)
    }

    @Test func lengthDelimitedBodyGoesAsItIs() throws {
        var writer = ClientResponseWriter()
        _ = writer.forwardedHead(
            try upstreamHead("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
            edits(),
            allocator: allocator
        )
        #expect(self.body(writer, "hello") == "hello")
        #expect(writer.end(trailers: nil, allocator: allocator) == nil)
    }

    /// An HTTP/1.0 client cannot read chunks: the body goes as it is and ends with the close.
    @Test func http10ClientGetsTheBodyUntilTheClose() throws {
        var writer = ClientResponseWriter()
        let (bytes, keepAlive) = writer.forwardedHead(
            try upstreamHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            edits(minor: 0),
            allocator: allocator
        )
        let written = Written(bytes)
        #expect(written.statusLine == "HTTP/1.0 200 OK")
        #expect(written.values("Transfer-Encoding") == [])
        #expect(written.values("Connection") == ["close"])
        #expect(!keepAlive)
        #expect(self.body(writer, "hello") == "hello")
        #expect(writer.end(trailers: nil, allocator: allocator) == nil)
    }

    /// A HEAD response keeps the framing fields a GET would have got and has no body and no
    /// chunk terminator.
    @Test func headResponseHasItsHeadOnly() throws {
        var writer = ClientResponseWriter()
        let (bytes, keepAlive) = writer.forwardedHead(
            try upstreamHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", method: .HEAD),
            edits(head: true),
            allocator: allocator
        )
        #expect(Written(bytes).values("Transfer-Encoding") == ["chunked"])
        #expect(keepAlive)
        #expect(self.body(writer, "hello") == "")
        #expect(writer.end(trailers: nil, allocator: allocator) == nil)
        var lengthWriter = ClientResponseWriter()
        let (lengthBytes, _) = lengthWriter.forwardedHead(
            try upstreamHead("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", method: .HEAD),
            edits(head: true),
            allocator: allocator
        )
        #expect(Written(lengthBytes).values("Content-Length") == ["5"])
        #expect(Written(lengthBytes).rest == "")
    }

    @Test func trailersKeepOnlyFieldsTheGatewayDoesNotOwn() throws {
        var writer = ClientResponseWriter()
        _ = writer.forwardedHead(
            try upstreamHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            edits(),
            allocator: allocator
        )
        let section =
            "Set-Cookie: s=1\r\nx-dbaudit-subject: admin\r\nX-Request-Id: forged\r\nRateLimit: limit=1\r\n"
            + "Strict-Transport-Security: max-age=0\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n"
            + "Content-Length: 3\r\nRetry-After: 1\r\nSet-Cookie2: x=1\r\nServer-Timing: db;dur=5\r\nX-Checksum: abc\r\n\r\n"
        let trailers = try Self.trailers(section)
        let end = writer.end(trailers: trailers, allocator: allocator)
        #expect(end.map { String(buffer: $0) } == "0\r\nServer-Timing: db;dur=5\r\nX-Checksum: abc\r\n\r\n")
    }

    @Test func trailersAreDroppedWhenTheClientGetsNoChunks() throws {
        var writer = ClientResponseWriter()
        _ = writer.forwardedHead(
            try upstreamHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            edits(minor: 0),
            allocator: allocator
        )
        #expect(writer.end(trailers: try Self.trailers("X-Checksum: abc\r\n\r\n"), allocator: allocator) == nil)
    }

    /// Trailers as the upstream's parser reads them.
    static func trailers(_ section: String) throws -> HTTP1Trailers {
        var parser = HTTP1ResponseParser(limits: HTTP1ParserLimits(maxHeaderBytes: 4096))
        parser.start(requestMethod: .GET)
        parser.feed(ByteBuffer(string: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + section))
        while let event = parser.next() {
            if case .end(let trailers) = event { return try #require(trailers) }
        }
        Issue.record("no trailers")
        throw CancellationError()
    }

    @Test func ownResponseIsHeadAndBodyInOneBuffer() {
        var writer = ClientResponseWriter()
        let fields: HTTPHeaders = ["Content-Type": "application/json", "Content-Length": "2"]
        let bytes = writer.ownResponse(
            status: 404,
            fields: fields,
            body: Array("{}".utf8),
            requestMinorVersion: 1,
            isHEAD: false,
            allocator: allocator
        )
        #expect(
            String(buffer: bytes)
                == "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        )
        #expect(writer.end(trailers: nil, allocator: allocator) == nil)
        let head = writer.ownResponse(
            status: 401,
            fields: fields,
            body: Array("{}".utf8),
            requestMinorVersion: 0,
            isHEAD: true,
            allocator: allocator
        )
        #expect(
            String(buffer: head)
                == "HTTP/1.0 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n"
        )
    }

    @Test func continueIsItsStatusLine() {
        #expect(
            String(buffer: ClientResponseWriter.continueHead(allocator: allocator)) == "HTTP/1.1 100 Continue\r\n\r\n"
        )
    }
}
