import GatewayCore
import GatewayHTTP1
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import GatewayProxy

/// Records, in order, what leaves `ClientRequestDecoder` inbound.
private final class PartRecorder: ChannelInboundHandler {
    typealias InboundIn = ClientRequestPart

    enum Event: Equatable {
        case head(method: String, uri: String, minor: Int, headers: [String])
        case body(String)
        case end
        case error
        case quiesce
    }

    var events: [Event] = []
    /// The last refusal fired.
    var refusal: ClientRequestRefusal?
    var failure: HTTP1ParseError? { self.refusal?.error }
    var readCompletes = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.events.append(
                .head(
                    method: head.method.rawValue,
                    uri: head.string(head.target),
                    minor: head.minorVersion,
                    headers: head.fields.map { "\(head.string($0.name))=\(head.string($0.value))" }
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

    func channelReadComplete(context: ChannelHandlerContext) {
        self.readCompletes += 1
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let refusal = error as? ClientRequestRefusal {
            self.refusal = refusal
            self.events.append(.error)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent { self.events.append(.quiesce) }
    }
}

/// Counts the reads that reach the socket side of the decoder.
private final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    var reads = 0

    func read(context: ChannelHandlerContext) {
        self.reads += 1
        context.read()
    }
}

private struct DecoderHarness {
    let channel = EmbeddedChannel()
    let decoder: ClientRequestDecoder
    let recorder = PartRecorder()
    let reads = ReadCounter()

    init(maxHeaderBytes: Int = 32 * 1024) throws {
        self.decoder = ClientRequestDecoder(limits: ClientRequestDecoder.limits(maxHeaderBytes: maxHeaderBytes))
        try self.channel.pipeline.syncOperations.addHandler(self.reads)
        try self.channel.pipeline.syncOperations.addHandler(self.decoder)
        try self.channel.pipeline.syncOperations.addHandler(self.recorder)
    }

    func send(_ pieces: String...) throws {
        for piece in pieces {
            try self.channel.writeInbound(self.channel.allocator.buffer(string: piece))
        }
    }

    /// What `ProxyHandler.endResponse` does once a response's end is written.
    func responseEnded() {
        self.decoder.responseEnded()
    }

    /// Writes a response's bytes as `ProxyHandler` does and returns what reached the socket.
    func respond(_ bytes: String) throws -> String {
        try self.channel.writeOutbound(ByteBuffer(string: bytes))
        self.decoder.responseEnded()
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

/// Answers every request as soon as its end arrives, as the proxy does from a cache, and
/// records how deeply deliveries nest.
private final class InstantAnswerer: ChannelInboundHandler {
    typealias InboundIn = ClientRequestPart
    var decoder: ClientRequestDecoder?
    var heads = 0
    var depth = 0
    var deepest = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.depth += 1
        defer { self.depth -= 1 }
        self.deepest = max(self.deepest, self.depth)
        switch self.unwrapInboundIn(data) {
        case .head: self.heads += 1
        case .body: break
        case .end: self.decoder?.responseEnded()
        }
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
        #expect(harness.recorder.failure == nil)
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
        // One request at a time: the next only once the response before it ended.
        #expect(harness.recorder.events == [.head(method: "GET", uri: "/a", minor: 1, headers: ["Host=g"]), .end])
        let completes = harness.recorder.readCompletes
        harness.responseEnded()
        #expect(
            harness.recorder.events == [
                .head(method: "GET", uri: "/a", minor: 1, headers: ["Host=g"]), .end,
                .head(method: "POST", uri: "/b", minor: 1, headers: ["Host=g", "Content-Length=2"]), .body("hi"), .end,
            ]
        )
        harness.responseEnded()
        #expect(
            harness.recorder.events.suffix(2) == [.head(method: "GET", uri: "/c", minor: 1, headers: ["Host=g"]), .end]
        )
        // Each delivery outside a read is followed by a read-complete (the proxy flushes on it).
        #expect(harness.recorder.readCompletes == completes + 2)
        harness.responseEnded()
        #expect(harness.recorder.events.count == 7)
        #expect(harness.recorder.readCompletes == completes + 2)
    }

    /// Pipelined requests answered while they are delivered are delivered one after the
    /// other, not each from inside the previous one's answer (a long pipeline would exhaust
    /// the stack).
    @Test func requestsAnsweredAtOnceDoNotNest() throws {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        let decoder = ClientRequestDecoder(limits: ClientRequestDecoder.limits(maxHeaderBytes: 8192))
        let answerer = InstantAnswerer()
        answerer.decoder = decoder
        try channel.pipeline.syncOperations.addHandler(decoder)
        try channel.pipeline.syncOperations.addHandler(answerer)
        let request = "GET /a HTTP/1.1\r\nHost: g\r\n\r\n"
        try channel.writeInbound(channel.allocator.buffer(string: String(repeating: request, count: 5000)))
        #expect(answerer.heads == 5000)
        #expect(answerer.deepest == 1)
    }

    @Test func aRequestSplitOverReadsWaitsToo() throws {
        let harness = try DecoderHarness()
        defer { harness.finish() }
        try harness.send("GET /a HTTP/1.1\r\nHost: g\r\n\r\nGET /b HT", "TP/1.1\r\nHost: g\r\n\r\n")
        #expect(harness.recorder.events.count == 2)
        harness.responseEnded()
        #expect(
            harness.recorder.events.suffix(2) == [.head(method: "GET", uri: "/b", minor: 1, headers: ["Host=g"]), .end]
        )
    }

    /// A response that ends before its request's body was read (an early refusal): the rest
    /// of that request is still delivered, and the next one follows without another wait.
    @Test func aResponseEndingBeforeItsRequestDoesNotHoldTheNext() throws {
        let harness = try DecoderHarness()
        defer { harness.finish() }
        try harness.send("POST /a HTTP/1.1\r\nHost: g\r\nContent-Length: 4\r\n\r\nab")
        harness.responseEnded()
        try harness.send("cdGET /b HTTP/1.1\r\nHost: g\r\n\r\n")
        #expect(
            harness.recorder.events == [
                .head(method: "POST", uri: "/a", minor: 1, headers: ["Host=g", "Content-Length=4"]), .body("abcd"),
                .end, .head(method: "GET", uri: "/b", minor: 1, headers: ["Host=g"]), .end,
            ]
        )
    }

    @Test func readsAreHeldWhileACompleteRequestWaitsForItsResponse() throws {
        let harness = try DecoderHarness()
        defer { harness.finish() }
        harness.channel.read()
        #expect(harness.reads.reads == 1)
        try harness.send("POST /a HTTP/1.1\r\nHost: g\r\nContent-Length: 4\r\n\r\nab")
        // The body is still coming: reads go on.
        harness.channel.read()
        #expect(harness.reads.reads == 2)
        try harness.send("cdGET /b HTTP/1.1\r\nHost: g\r\n\r\n")
        // The request is complete and unanswered: the socket is not read.
        harness.channel.read()
        harness.channel.read()
        #expect(harness.reads.reads == 2)
        // Answered: the waiting request goes on, and it is complete too, so still no read.
        harness.responseEnded()
        #expect(
            harness.recorder.events.suffix(2) == [.head(method: "GET", uri: "/b", minor: 1, headers: ["Host=g"]), .end]
        )
        #expect(harness.reads.reads == 2)
        // Answered too: the held read is made now.
        harness.responseEnded()
        #expect(harness.reads.reads == 3)
        harness.channel.read()
        #expect(harness.reads.reads == 4)
    }

    @Test func aRefusalIsOneErrorAndNothingAfterIt() throws {
        let harness = try DecoderHarness()
        defer { harness.finish() }
        try harness.send(
            "GET /a HTTP/1.1\r\nHost: g\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
            "GET /c HTTP/1.1\r\nHost: g\r\n\r\n"
        )
        // The refusal waits for the response owed to the request before it.
        #expect(harness.recorder.events == [.head(method: "GET", uri: "/a", minor: 1, headers: ["Host=g"]), .end])
        #expect(harness.recorder.refusal == nil)
        harness.responseEnded()
        #expect(
            harness.recorder.events == [.head(method: "GET", uri: "/a", minor: 1, headers: ["Host=g"]), .end, .error]
        )
        #expect(harness.recorder.failure == .missingHost)
        // What the parser read of the refused request goes with it.
        #expect(harness.recorder.refusal?.request == HTTP1RefusedRequest(method: .GET, target: "/b"))
        harness.responseEnded()
        #expect(harness.recorder.events.count == 3)
    }

    @Test func aRefusalCarriesTheTargetAndTheClientsRequestID() throws {
        let harness = try DecoderHarness()
        defer { harness.finish() }
        try harness.send("POST /oauth/authorize?x=1 HTTP/1.1\r\nX-Request-Id: abc-1\r\nHost: a\r\nHost: b\r\n\r\n")
        #expect(harness.recorder.failure == .duplicateHost)
        #expect(
            harness.recorder.refusal?.request
                == HTTP1RefusedRequest(method: .POST, target: "/oauth/authorize?x=1", requestID: "abc-1")
        )
    }

    @Test func aRefusalInTheRequestLineCarriesNothing() throws {
        let harness = try DecoderHarness()
        defer { harness.finish() }
        try harness.send("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(harness.recorder.failure == .invalidTarget)
        #expect(harness.recorder.refusal?.request == nil)
    }

    /// A refusal in a body is the current request's: it is fired at once, not after its
    /// response.
    @Test func aRefusalInABodyIsFiredAtOnce() throws {
        let harness = try DecoderHarness()
        defer { harness.finish() }
        try harness.send("POST /a HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        #expect(harness.recorder.events.last == .error)
        #expect(harness.recorder.failure == .invalidChunkSize)
        #expect(harness.recorder.refusal?.request == nil)
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
        try harness.send("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n")
        harness.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(harness.recorder.events.filter { $0 == .quiesce }.count == 1)
    }

    // MARK: quiescing

    @Test func quiesceWhenIdleClosesNow() throws {
        let harness = try DecoderHarness()
        defer { harness.finish() }
        try harness.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try harness.send("GET /a HTTP/1.1\r\nHost: g\r\n\r\n")
        harness.responseEnded()
        #expect(harness.channel.isActive)
        harness.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(!harness.channel.isActive)
        // No response was owed: the proxy is not asked to do anything.
        #expect(!harness.recorder.events.contains(.quiesce))
    }

    /// Busy: the proxy is told (it answers with `Connection: close` and closes), and no
    /// request after the current one is delivered or read.
    @Test func quiesceWhenBusyEndsAfterTheCurrentRequest() throws {
        let harness = try DecoderHarness()
        defer { harness.finish() }
        try harness.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try harness.send("POST /a HTTP/1.1\r\nHost: g\r\nContent-Length: 4\r\n\r\nab")
        harness.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(harness.channel.isActive)
        #expect(harness.recorder.events.last == .quiesce)
        // The rest of the current request still comes.
        try harness.send("cdGET /b HTTP/1.1\r\nHost: g\r\n\r\n")
        #expect(harness.recorder.events.suffix(2) == [.body("cd"), .end])
        let reads = harness.reads.reads
        harness.channel.read()
        harness.responseEnded()
        #expect(harness.recorder.events.filter { if case .head = $0 { true } else { false } }.count == 1)
        #expect(harness.reads.reads == reads)
    }

    @Test func ordinaryRequestsNeverQuiesce() throws {
        let harness = try DecoderHarness()
        defer { harness.finish() }
        try harness.send(
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: x\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
        )
        harness.responseEnded()
        #expect(!harness.recorder.events.contains(.quiesce))
        #expect(harness.recorder.events.filter { $0 == .end }.count == 2)
    }

    // MARK: responses

    /// Responses are `ProxyHandler`'s bytes: the decoder passes them untouched, HEAD or not.
    @Test func responseBytesPassUntouched() throws {
        let harness = try DecoderHarness()
        defer { harness.finish() }
        try harness.send("HEAD /a HTTP/1.1\r\nHost: g\r\n\r\nGET /b HTTP/1.1\r\nHost: g\r\n\r\n")
        let text = try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        #expect(text == "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        // The next pipelined request follows the response's end.
        #expect(harness.recorder.events.filter { $0 == .end }.count == 2)
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
        #expect(accepted.recorder.failure == nil)
        #expect(accepted.recorder.events.last == .end)

        let refused = try DecoderHarness(maxHeaderBytes: limit)
        defer { refused.finish() }
        let head =
            "GET / HTTP/1.1\r\nHost: g\r\nX-Big: \(String(repeating: "a", count: limit + ClientRequestDecoder.headSlack))\r\n\r\n"
        try refused.send(head)
        #expect(refused.recorder.failure == .headTooLarge)
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
        let failure = try #require(harness.recorder.failure)
        let error = failure.gatewayError(maxHeaderBytes: 1024)
        #expect(error.status == status)
        #expect(error.code == code)
        #expect(harness.recorder.events.last == .error)
    }

    @Test func headTooLargeNamesTheConfiguredLimit() {
        #expect(HTTP1ParseError.headTooLarge.gatewayError(maxHeaderBytes: 1024).description.contains("1024"))
    }
}
