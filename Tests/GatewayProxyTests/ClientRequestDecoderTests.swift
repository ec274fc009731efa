import GatewayCore
import GatewayHTTP1
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import GatewayProxy

/// Records, in order, what leaves `ClientRequestDecoder` inbound.
private final class PartRecorder: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart

    enum Event: Equatable {
        case head(method: String, uri: String, minor: Int, headers: [String])
        case body(String)
        case end
        case error
        case quiesce
    }

    var events: [Event] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.events.append(
                .head(
                    method: head.method.rawValue,
                    uri: head.uri,
                    minor: head.version.minor,
                    headers: head.headers.map { "\($0.name)=\($0.value)" }
                )
            )
        case .body(let buffer):
            let text = String(decoding: buffer.readableBytesView, as: UTF8.self)
            if case .body(let previous) = self.events.last {
                self.events[self.events.count - 1] = .body(previous + text)
            } else {
                self.events.append(.body(text))
            }
        case .end:
            self.events.append(.end)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError { self.events.append(.error) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent { self.events.append(.quiesce) }
    }
}

private struct DecoderHarness {
    let channel = EmbeddedChannel()
    let decoder: ClientRequestDecoder
    let recorder = PartRecorder()

    init(maxHeaderBytes: Int = 32 * 1024) throws {
        self.decoder = ClientRequestDecoder(limits: ClientRequestDecoder.limits(maxHeaderBytes: maxHeaderBytes))
        try self.channel.pipeline.syncOperations.addHandler(self.decoder)
        try self.channel.pipeline.syncOperations.addHandler(self.recorder)
    }

    func send(_ pieces: String...) throws {
        for piece in pieces {
            try self.channel.writeInbound(self.channel.allocator.buffer(string: piece))
        }
    }

    /// Writes `bytes` as `ProxyHandler` does (marker head, bytes as a body part, end) and
    /// returns what reached the socket.
    func respond(_ bytes: String) throws -> String {
        let marker = HTTPResponseHead(version: .http1_0, status: .ok)
        try self.channel.writeOutbound(HTTPServerResponsePart.head(marker))
        try self.channel.writeOutbound(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: bytes))))
        try self.channel.writeOutbound(HTTPServerResponsePart.end(nil))
        return try self.written()
    }

    func written() throws -> String {
        var text = ""
        while let buffer = try self.channel.readOutbound(as: ByteBuffer.self) {
            text += String(decoding: buffer.readableBytesView, as: UTF8.self)
        }
        return text
    }

    func finish() {
        _ = try? self.channel.finish()
    }
}

@Suite struct ClientRequestDecoderTests {
    @Test func headWithFieldsInOrder() throws {
        let harness = try DecoderHarness()
        defer { harness.finish() }
        try harness.send("GET /v1/x?a=1 HTTP/1.1\r\nHost: g\r\nX-A:  one \r\nx-a: two\r\n\r\n")
        #expect(
            harness.recorder.events == [
                .head(method: "GET", uri: "/v1/x?a=1", minor: 1, headers: ["Host=g", "X-A=one", "x-a=two"]), .end,
            ]
        )
        #expect(harness.decoder.failure == nil)
    }

    @Test func contentLengthBodyArrivingInPieces() throws {
        let harness = try DecoderHarness()
        defer { harness.finish() }
        try harness.send("POST /p HTTP/1.0\r\nContent-Length: 5\r\n\r\nhe", "llo")
        #expect(
            harness.recorder.events == [
                .head(method: "POST", uri: "/p", minor: 0, headers: ["Content-Length=5"]), .body("hello"), .end,
            ]
        )
    }

    @Test func chunkedBodyIsDecodedAndTrailersEndIt() throws {
        let harness = try DecoderHarness()
        defer { harness.finish() }
        try harness.send(
            "POST /p HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhel",
            "lo\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"
        )
        #expect(
            harness.recorder.events == [
                .head(method: "POST", uri: "/p", minor: 1, headers: ["Host=g", "Transfer-Encoding=chunked"]),
                .body("helloabc"), .end,
            ]
        )
    }

    @Test func pipelinedRequestsInOneRead() throws {
        let harness = try DecoderHarness()
        defer { harness.finish() }
        try harness.send(
            "GET /a HTTP/1.1\r\nHost: g\r\n\r\nPOST /b HTTP/1.1\r\nHost: g\r\nContent-Length: 2\r\n\r\nhiGET /c HTTP/1.1\r\nHost: g\r\n\r\n"
        )
        #expect(
            harness.recorder.events == [
                .head(method: "GET", uri: "/a", minor: 1, headers: ["Host=g"]), .end,
                .head(method: "POST", uri: "/b", minor: 1, headers: ["Host=g", "Content-Length=2"]), .body("hi"), .end,
                .head(method: "GET", uri: "/c", minor: 1, headers: ["Host=g"]), .end,
            ]
        )
    }

    @Test func aRefusalIsOneErrorAndNothingAfterIt() throws {
        let harness = try DecoderHarness()
        defer { harness.finish() }
        try harness.send(
            "GET /a HTTP/1.1\r\nHost: g\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
            "GET /c HTTP/1.1\r\nHost: g\r\n\r\n"
        )
        #expect(
            harness.recorder.events == [.head(method: "GET", uri: "/a", minor: 1, headers: ["Host=g"]), .end, .error]
        )
        #expect(harness.decoder.failure == .missingHost)
    }

    @Test func connectionCloseEndsDecoding() throws {
        let harness = try DecoderHarness()
        defer { harness.finish() }
        try harness.send("GET /a HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: g\r\n\r\n")
        try harness.send("GET /c HTTP/1.1\r\nHost: g\r\n\r\n")
        #expect(
            harness.recorder.events == [
                .head(method: "GET", uri: "/a", minor: 1, headers: ["Host=g", "Connection=close"]), .end,
            ]
        )
    }

    /// After an upgrade request the bytes are no longer HTTP/1: the connection must end with
    /// that request, so the quiesce comes right after its end and nothing more is decoded.
    @Test func anUpgradeEndsTheConnectionAfterTheCurrentRequest() throws {
        let upgrade = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        let next = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
        let harness = try DecoderHarness()
        defer { harness.finish() }
        try harness.send(upgrade + next)
        #expect(harness.recorder.events.count == 3)
        #expect(harness.recorder.events.suffix(2) == [.end, .quiesce])
    }

    @Test func quiesceIsSentOnlyOnce() throws {
        let harness = try DecoderHarness()
        defer { harness.finish() }
        harness.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        try harness.send("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n")
        #expect(harness.recorder.events.filter { $0 == .quiesce }.count == 1)
    }

    @Test func ordinaryRequestsNeverQuiesce() throws {
        let harness = try DecoderHarness()
        defer { harness.finish() }
        try harness.send(
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: x\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
        )
        #expect(!harness.recorder.events.contains(.quiesce))
        #expect(harness.recorder.events.filter { $0 == .end }.count == 2)
    }

    // MARK: responses

    /// Only the bytes `ProxyHandler`'s writer made reach the socket: the marker head and the
    /// end write nothing of their own.
    @Test func responseBytesAreWrittenAsTheyAre() throws {
        let harness = try DecoderHarness()
        defer { harness.finish() }
        try harness.send("HEAD /a HTTP/1.1\r\nHost: g\r\n\r\n")
        let text = try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        #expect(text == "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
    }

    @Test func interimContinueHeadIsItsStatusLine() throws {
        let harness = try DecoderHarness()
        defer { harness.finish() }
        try harness.send("POST /a HTTP/1.1\r\nHost: g\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        try harness.channel.writeOutbound(
            HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .continue))
        )
        #expect(try harness.written() == "HTTP/1.1 100 Continue\r\n\r\n")
    }

    /// The end's promise completes only once the bytes before it are written.
    @Test func endCompletesInOrder() throws {
        let harness = try DecoderHarness()
        defer { harness.finish() }
        try harness.channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_0, status: .ok)))
        let end = harness.channel.writeAndFlush(HTTPServerResponsePart.end(nil))
        #expect(throws: Never.self) { try end.wait() }
        #expect(try harness.written() == "")
    }

    // MARK: limits

    /// `[server] max_header_bytes` counted names and values only: a head whose names and
    /// values fill the limit still passes with ordinary line overhead; a longer one does not.
    @Test func headLimitIsMaxHeaderBytesPlusTheSlack() throws {
        let limit = 8 * 1024
        var fields = "Host: g\r\n"
        var counted = 5
        var index = 0
        while counted < limit - 200 {
            fields += "X-F\(index): \(String(repeating: "v", count: 90))\r\n"
            counted += "X-F\(index)".utf8.count + 90
            index += 1
        }
        let accepted = try DecoderHarness(maxHeaderBytes: limit)
        defer { accepted.finish() }
        try accepted.send("GET /\(String(repeating: "p", count: 150)) HTTP/1.1\r\n" + fields + "\r\n")
        #expect(accepted.decoder.failure == nil)
        #expect(accepted.recorder.events.last == .end)

        let refused = try DecoderHarness(maxHeaderBytes: limit)
        defer { refused.finish() }
        let head =
            "GET / HTTP/1.1\r\nHost: g\r\nX-Big: \(String(repeating: "a", count: limit + ClientRequestDecoder.headSlack))\r\n\r\n"
        try refused.send(head)
        #expect(refused.decoder.failure == .headTooLarge)
    }

    // MARK: refusals as the gateway answers them

    @Test(arguments: [
        ("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405, "method_not_allowed"),
        ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "http_version_not_supported"),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nX: \(String(repeating: "a", count: 2000))\r\n\r\n", 431,
            "request_header_fields_too_large"
        ),
        ("GET / HTTP/1.1\r\n\r\n", 400, "invalid_request"),
        ("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_request"),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
            "invalid_request"
        ),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "invalid_request"),
        ("GET / HTTP/1.1\nHost: a\n\n", 400, "invalid_request"),
    ])
    func refusalsGetTheGatewaysStatus(input: String, status: Int, code: String) throws {
        let harness = try DecoderHarness(maxHeaderBytes: 1024)
        defer { harness.finish() }
        try harness.send(input)
        let failure = try #require(harness.decoder.failure)
        let error = failure.gatewayError(maxHeaderBytes: 1024)
        #expect(error.status == status)
        #expect(error.code == code)
        #expect(harness.recorder.events.last == .error)
    }

    @Test func headTooLargeNamesTheConfiguredLimit() {
        #expect(HTTP1ParseError.headTooLarge.gatewayError(maxHeaderBytes: 1024).description.contains("1024"))
    }
}
