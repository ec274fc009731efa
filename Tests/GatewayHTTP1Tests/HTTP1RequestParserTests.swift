import GatewayHTTP1
import NIOCore
import Testing

/// What the parser made of an input, with bodies joined: enough to assert on.
struct Parsed {
    var heads: [HTTP1RequestHead] = []
    var bodies: [[UInt8]] = []
    var trailers: [HTTP1Trailers?] = []
    var ends = 0
    var error: HTTP1ParseError?
    var stopped = false
}

func parse(
    _ pieces: [[UInt8]],
    limits: HTTP1ParserLimits = HTTP1ParserLimits(maxHeaderBytes: 32 * 1024)
) -> Parsed {
    var parser = HTTP1RequestParser(limits: limits)
    var parsed = Parsed()
    for piece in pieces {
        parser.feed(ByteBuffer(bytes: piece))
        while let event = parser.next() {
            switch event {
            case .head(let head):
                parsed.heads.append(head)
                parsed.bodies.append([])
            case .body(let bytes):
                parsed.bodies[parsed.bodies.count - 1] += bytes.readableBytesView
            case .end(let trailers):
                parsed.ends += 1
                parsed.trailers.append(trailers)
            case .error(let error):
                #expect(parsed.error == nil, "a second event after an error")
                parsed.error = error
            }
        }
    }
    parsed.stopped = parser.isStopped
    return parsed
}

func parse(_ text: String, limits: HTTP1ParserLimits = HTTP1ParserLimits(maxHeaderBytes: 32 * 1024)) -> Parsed {
    parse([Array(text.utf8)], limits: limits)
}

/// Every way of cutting `bytes` in two, and byte by byte.
func everySplit(_ bytes: [UInt8]) -> [[[UInt8]]] {
    var result: [[[UInt8]]] = [[bytes], bytes.map { [$0] }]
    for cut in 1..<bytes.count {
        result.append([Array(bytes[..<cut]), Array(bytes[cut...])])
    }
    return result
}

@Suite struct HTTP1RequestParserTests {
    // MARK: Accepted forms

    @Test func simpleGetHead() throws {
        let parsed = parse("GET /v1/databases?x=1 HTTP/1.1\r\nHost: example.com:8443\r\nAccept:  */*  \r\n\r\n")
        #expect(parsed.error == nil)
        let head = try #require(parsed.heads.first)
        #expect(head.method == .GET)
        #expect(head.string(head.target) == "/v1/databases?x=1")
        #expect(head.minorVersion == 1)
        #expect(head.fields.count == 2)
        #expect(head.string(head.fields[1].name) == "Accept")
        #expect(head.string(head.fields[1].value) == "*/*")
        #expect(head.string(head.fields[1].line) == "Accept:  */*  \r\n")
        #expect(head.value(head.host) == "example.com:8443")
        #expect(head.framing == .none)
        #expect(head.keepAlive)
        #expect(parsed.ends == 1)
    }

    @Test func policyFieldsAreExtracted() throws {
        let parsed = parse(
            "POST /a HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer k\r\nX-Forwarded-For: 1.2.3.4\r\n"
                + "x-forwarded-for: 5.6.7.8\r\nX-Request-Id: abc\r\nExpect: 100-continue\r\n"
                + "Connection: keep-alive, X-Secret\r\nUpgrade: websocket\r\nContent-Length: 2\r\n\r\nhi"
        )
        let head = try #require(parsed.heads.first)
        #expect(head.value(head.authorization) == "Bearer k")
        #expect(head.forwardedFor.count == 2)
        #expect(head.value(head.forwardedFor) == "1.2.3.4")
        #expect(head.value(head.requestID) == "abc")
        #expect(head.value(head.expect) == "100-continue")
        #expect(head.connection.keepAlive && !head.connection.close && !head.connection.upgrade)
        #expect(head.connection.nominated.map { head.string($0) } == ["X-Secret"])
        #expect(head.hasUpgrade && !head.isUpgrade)
        #expect(head.framing == .contentLength(2))
        #expect(parsed.bodies == [Array("hi".utf8)])
    }

    @Test func everyHTTPMethodLLHTTPKnowsButConnect() {
        for method in HTTP1Method.allCases where method != .CONNECT {
            let parsed = parse("\(method.rawValue) / HTTP/1.1\r\nHost: h\r\n\r\n")
            #expect(parsed.heads.first?.method == method)
        }
    }

    @Test func http10WithoutHostAndItsKeepAlive() throws {
        let closing = parse("GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n")
        #expect(closing.heads.count == 1 && closing.ends == 1 && closing.stopped && closing.error == nil)
        #expect(closing.heads[0].minorVersion == 0 && !closing.heads[0].keepAlive)
        let kept = parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n")
        #expect(kept.heads.count == 2 && kept.ends == 2)
    }

    @Test func connectionCloseStopsTheParser() {
        let parsed = parse(
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
        )
        #expect(parsed.heads.count == 1)
        #expect(parsed.stopped)
        #expect(parsed.error == nil)
    }

    @Test func upgradeStopsAfterTheMessage() {
        let parsed = parse(
            "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nGET /next HTTP/1.1\r\n"
        )
        #expect(parsed.heads.count == 1 && parsed.ends == 1 && parsed.stopped)
        #expect(parsed.heads[0].isUpgrade)
    }

    @Test func chunkedBodyWithExtensionsAndTrailers() throws {
        let text =
            "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"
            + "5;ext=1\r\nhello\r\n000A;a;b=\"q\\\"x\"\r\n0123456789\r\n0\r\nX-T: 1\r\nY:2 \r\n\r\n"
        for pieces in everySplit(Array(text.utf8)) {
            let parsed = parse(pieces)
            #expect(parsed.error == nil)
            #expect(parsed.heads.first?.framing == .chunked)
            #expect(parsed.bodies == [Array("hello0123456789".utf8)])
            let trailers = try #require(parsed.trailers.first ?? nil)
            #expect(
                trailers.fields.map { trailers.string($0.name) + "=" + trailers.string($0.value) } == ["X-T=1", "Y=2"]
            )
        }
    }

    @Test func pipelinedRequestsSplitAtEveryByte() {
        let text =
            "\r\nPUT /x HTTP/1.1\r\nHost: h\r\ncontent-length: 3\r\n\r\nabc"
            + "POST /y HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n"
            + "GET /z HTTP/1.1\r\nHost: h\r\n\r\n"
        for pieces in everySplit(Array(text.utf8)) {
            let parsed = parse(pieces)
            #expect(parsed.error == nil)
            #expect(parsed.heads.map { $0.string($0.target) } == ["/x", "/y", "/z"])
            #expect(parsed.bodies == [Array("abc".utf8), Array("de".utf8), []])
            #expect(parsed.ends == 3)
        }
    }

    @Test func refusalsAreTheSameAtEverySplit() {
        let text = "GET / HTTP/1.1\r\nHost: h\r\nX: a\u{0}b\r\n\r\n"
        for pieces in everySplit(Array(text.utf8)) {
            #expect(parse(pieces).error == .invalidFieldValue)
        }
        let chunked = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n"
        for pieces in everySplit(Array(chunked.utf8)) {
            #expect(parse(pieces).error == .bareLF)
        }
    }

    // MARK: Refusals, one per rule

    @Test(arguments: [
        ("GET /v1 HTTP/1.1\nHost: a\n\n", HTTP1ParseError.bareLF),
        ("GET /v1 HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n", .bareLF),
        ("GET /v1 HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", .bareCR),
        ("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", .bareLF),
        ("GET /v1 HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", .obsoleteLineFolding),
        ("GET /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", .invalidFieldName),
        ("GET /v1 HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", .invalidFieldName),
        ("GET /v1 HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", .invalidFieldName),
        ("GET /v1 HTTP/1.1\r\nHost: a\r\nX\u{7F}: b\r\n\r\n", .invalidFieldName),
        ("GET /v1 HTTP/1.1\r\nHost: a\r\nX-A: b\u{0}c\r\n\r\n", .invalidFieldValue),
        ("GET /v1 HTTP/1.1\r\nHost: a\r\nX-A: b\u{1}c\r\n\r\n", .invalidFieldValue),
        ("GET /v1 HTTP/1.1\r\nHost: a\r\nX-A: b\u{7F}\r\n\r\n", .invalidFieldValue),
        ("GET /v1 HTTP/1.1\r\n\r\n", .missingHost),
        ("GET /v1 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", .duplicateHost),
        ("GET /v1 HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", .duplicateHost),
        ("GET /v1 HTTP/1.1\r\nHost: a b\r\n\r\n", .invalidHost),
        ("GET /v1 HTTP/1.1\r\nHost: a/b\r\n\r\n", .invalidHost),
        ("GET /v1 HTTP/1.1\r\nHost: u@a\r\n\r\n", .invalidHost),
        ("GET /v1 HTTP/1.1\r\nHost: a:123456\r\n\r\n", .invalidHost),
        ("GET /v1 HTTP/1.1\r\nHost: \r\n\r\n", .invalidHost),
        ("GET http://internal/v1 HTTP/1.1\r\nHost: a\r\n\r\n", .invalidTarget),
        ("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", .invalidTarget),
        ("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", .invalidTarget),
        ("GET /caf\u{E9} HTTP/1.1\r\nHost: a\r\n\r\n", .invalidTarget),
        ("GET /v1\r\n\r\n", .invalidRequestLine),
        ("GET  /v1 HTTP/1.1\r\nHost: a\r\n\r\n", .invalidRequestLine),
        ("GET /v1  HTTP/1.1\r\nHost: a\r\n\r\n", .invalidRequestLine),
        ("GET /v1 HTTP/1.1 \r\nHost: a\r\n\r\n", .invalidRequestLine),
        ("GET /v1 http/1.1\r\nHost: a\r\n\r\n", .invalidRequestLine),
        ("GET /v1 HTTP/1.2\r\nHost: a\r\n\r\n", .unsupportedVersion),
        ("GET /v1 HTTP/2.0\r\nHost: a\r\n\r\n", .unsupportedVersion),
        ("GET /v1 HTTP/0.9\r\nHost: a\r\n\r\n", .unsupportedVersion),
        ("get /v1 HTTP/1.1\r\nHost: a\r\n\r\n", .invalidMethod),
        ("FOO /v1 HTTP/1.1\r\nHost: a\r\n\r\n", .invalidMethod),
        ("G(T /v1 HTTP/1.1\r\nHost: a\r\n\r\n", .invalidMethod),
        ("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", .connectNotSupported),
        (
            "POST /v1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            .contentLengthWithTransferEncoding
        ),
        (
            "POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            .contentLengthWithTransferEncoding
        ),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", .duplicateContentLength),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", .duplicateContentLength),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", .invalidContentLength),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", .invalidContentLength),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n", .invalidContentLength),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", .invalidContentLength),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", .invalidContentLength),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456789\r\n\r\n", .invalidContentLength),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", .unsupportedTransferEncoding),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", .unsupportedTransferEncoding),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", .unsupportedTransferEncoding),
        (
            "POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            .unsupportedTransferEncoding
        ),
        ("POST /v1 HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", .unsupportedTransferEncoding),
        ("GET /v1 HTTP/1.1\r\nHost: a\r\nConnection: close; x\r\n\r\n", .invalidConnection),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x10\r\n", .invalidChunkSize),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n", .invalidChunkSize),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", .invalidChunkSize),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\n", .invalidChunkSize),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n", .invalidChunkSize),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", .invalidChunkSize),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n8000000000000000\r\n", .invalidChunkSize),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5; e=1\r\n", .invalidChunkExtension),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;=1\r\n", .invalidChunkExtension),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;e=\r\n", .invalidChunkExtension),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;e=\"x\r\n", .invalidChunkExtension),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n", .bareLF),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", .bareLF),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r0\r\n\r\n", .bareCR),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX : y\r\n\r\n", .invalidFieldName),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: \u{0}\r\n\r\n", .invalidFieldValue),
        ("POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n x\r\n\r\n", .obsoleteLineFolding),
    ])
    func refuses(_ text: String, _ expected: HTTP1ParseError) {
        let parsed = parse(text)
        #expect(parsed.error == expected, "\(text.debugDescription)")
        #expect(parsed.ends == 0 || parsed.heads.count > parsed.ends || expected == .bareLF)
    }

    @Test func contentLengthWithSpacesAndLeadingZeros() {
        #expect(
            parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:" + String(repeating: " ", count: 600) + "0\r\n\r\n")
                .heads.first?.framing == HTTP1BodyFraming.none
        )
        #expect(
            parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 005 \r\n\r\nhello").heads.first?.framing
                == .contentLength(5)
        )
    }

    // MARK: Limits

    @Test func headLimitCountsTheWholeHead() {
        let limits = HTTP1ParserLimits(maxHeadBytes: 64, maxChunkLineBytes: 16, maxTrailerBytes: 32)
        let fits = "GET / HTTP/1.1\r\nHost: h\r\nX: " + String(repeating: "a", count: 32) + "\r\n\r\n"
        #expect(fits.utf8.count == 64)
        #expect(parse(fits, limits: limits).error == nil)
        let over = "GET / HTTP/1.1\r\nHost: h\r\nX: " + String(repeating: "a", count: 33) + "\r\n\r\n"
        #expect(parse(over, limits: limits).error == .headTooLarge)
        // Without an end: refused as soon as the limit is reached with no line end in it
        // (the line end would be past the limit), not buffered further.
        let endless = [UInt8]("GET / HTTP/1.1\r\nX: ".utf8) + [UInt8](repeating: 97, count: 45)
        #expect(endless.count == 64)
        #expect(parse(endless.map { [$0] }, limits: limits).error == .headTooLarge)
        #expect(parse(Array(endless.dropLast()).map { [$0] }, limits: limits).error == nil)
        // Empty lines before the request line count.
        #expect(parse(String(repeating: "\r\n", count: 33), limits: limits).error == .headTooLarge)
    }

    /// Fuzzer find (`http1`, "ours differs when the input is cut"): a bare LF past the head
    /// limit was reported as `bareLF` when the input came whole and as `headTooLarge` when it
    /// came in pieces. Bytes past a limit are never looked at now.
    @Test func bytesPastTheLimitDoNotDecideTheRefusal() {
        let limits = HTTP1ParserLimits(maxHeaderBytes: 1024)
        let head = "POST /public/first HTTP/1.1\r\nHost: g\r\nContent-Length: 0" + String(repeating: " ", count: 1100)
        for ending in ["\n\r\n", "\r\n\r\n", "\rx", "\u{0}"] {
            let bytes = Array((head + ending).utf8)
            #expect(parse([bytes], limits: limits).error == .headTooLarge)
            #expect(parse(bytes.map { [$0] }, limits: limits).error == .headTooLarge)
            #expect(
                parse(
                    stride(from: 0, to: bytes.count, by: 7).map { Array(bytes[$0..<min($0 + 7, bytes.count)]) },
                    limits: limits
                ).error == .headTooLarge
            )
        }
        // The same for trailers: a bare LF past the trailer limit.
        let trailerLimits = HTTP1ParserLimits(maxHeadBytes: 1024, maxChunkLineBytes: 64, maxTrailerBytes: 40)
        let chunked = Array(
            ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: "
                + String(repeating: "a", count: 60) + "\n").utf8
        )
        #expect(parse([chunked], limits: trailerLimits).error == .trailersTooLarge)
        #expect(parse(chunked.map { [$0] }, limits: trailerLimits).error == .trailersTooLarge)
    }

    /// Fuzzer find (`http1`, "request 0 ended"): a `Transfer-Encoding` trailer ended the
    /// message for ours while llhttp refused it (it refuses Content-Length too, and acts on
    /// Connection and Upgrade in trailers). Such trailers are refused now; the others the
    /// gateway drops before the upstream (forged identity headers included) still parse.
    @Test func framingFieldsInTrailersAreRefused() {
        let head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
        for trailer in [
            "Transfer-Encoding: chunked", "transfer-encoding: gzip", "Content-Length: 5", "Connection: close",
            "Upgrade: x",
        ] {
            #expect(parse(head + trailer + "\r\n\r\n").error == .framingTrailerField, "\(trailer)")
        }
        let forged =
            "X-DBAudit-Subject: admin\r\nX-Forwarded-For: 6.6.6.6\r\nAuthorization: Bearer stolen\r\nHost: x\r\n"
        let parsed = parse(head + forged + "\r\n")
        #expect(parsed.error == nil && parsed.ends == 1)
        #expect(parsed.trailers.first??.fields.count == 4)
    }

    @Test func headerCountLimitIncludesTrailers() {
        let limits = HTTP1ParserLimits(
            maxHeadBytes: 1024,
            maxHeaderCount: 3,
            maxChunkLineBytes: 16,
            maxTrailerBytes: 512
        )
        #expect(parse("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n", limits: limits).error == nil)
        #expect(
            parse("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits: limits).error
                == .tooManyHeaderFields
        )
        let chunked = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\nB: 2\r\n\r\n"
        #expect(parse(chunked, limits: limits).error == .tooManyHeaderFields)
        // The count starts again for the next request.
        let two = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n"
        #expect(parse(two, limits: limits).ends == 2)
    }

    @Test func chunkLineLimit() {
        let limits = HTTP1ParserLimits(maxHeadBytes: 1024, maxChunkLineBytes: 16, maxTrailerBytes: 64)
        let head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        #expect(
            parse(head + "5;e=" + String(repeating: "x", count: 12) + "\r\nhello\r\n0\r\n\r\n", limits: limits).error
                == nil
        )
        #expect(
            parse(head + "5;e=" + String(repeating: "x", count: 13) + "\r\nhello\r\n0\r\n\r\n", limits: limits).error
                == .chunkLineTooLong
        )
        // An endless extension is refused once it passes the limit, byte by byte too.
        let endless = Array((head + "5;e=" + String(repeating: "x", count: 100)).utf8)
        #expect(parse(endless.map { [$0] }, limits: limits).error == .chunkLineTooLong)
    }

    @Test func trailerLimits() {
        let limits = HTTP1ParserLimits(maxHeadBytes: 1024, maxChunkLineBytes: 16, maxTrailerBytes: 32)
        let head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
        #expect(parse(head + "X: " + String(repeating: "a", count: 25) + "\r\n\r\n", limits: limits).error == nil)
        #expect(
            parse(head + "X: " + String(repeating: "a", count: 26) + "\r\n\r\n", limits: limits).error
                == .trailersTooLarge
        )
        // Head and trailers together stay within the head limit.
        let tight = HTTP1ParserLimits(maxHeadBytes: 80, maxChunkLineBytes: 16, maxTrailerBytes: 64)
        #expect(
            parse(head + "X: " + String(repeating: "a", count: 25) + "\r\n\r\n", limits: tight).error == .headTooLarge
        )
    }

    @Test func nothingIsParsedAfterAnError() {
        var parser = HTTP1RequestParser(limits: HTTP1ParserLimits(maxHeaderBytes: 1024))
        parser.feed(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"))
        guard case .error(.duplicateHost) = parser.next() else {
            Issue.record("expected the duplicate Host refusal")
            return
        }
        parser.feed(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
        #expect(parser.next() == nil)
        #expect(parser.isStopped)
    }
}
