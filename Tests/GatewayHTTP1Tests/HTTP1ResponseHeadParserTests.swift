import GatewayHTTP1
import GatewayHTTP1Oracle
import NIOCore
import Testing

@Suite struct HTTP1ResponseHeadParserTests {
    static let limits = HTTP1ParserLimits(maxHeaderBytes: 1024)

    static func parse(
        _ text: String,
        method: HTTP1Method = .GET,
        limits: HTTP1ParserLimits = Self.limits
    ) throws(HTTP1ParseError) -> (HTTP1ResponseHead?, ByteBuffer) {
        var parser = HTTP1ResponseHeadParser(limits: limits)
        var buffer = ByteBuffer(string: text)
        let head = try parser.parse(&buffer, requestMethod: method)
        return (head, buffer)
    }

    @Test func framingFromStatusMethodAndFields() throws {
        let cases: [(String, HTTP1Method, HTTP1BodyFraming, Bool)] = [
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", .GET, .contentLength(5), true),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", .GET, .chunked, true),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", .GET, .untilClose, false),
            ("HTTP/1.1 200 OK\r\n\r\n", .GET, .untilClose, false),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", .HEAD, .none, true),
            ("HTTP/1.1 204 No Content\r\n\r\n", .GET, .none, true),
            ("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", .GET, .none, true),
            ("HTTP/1.1 100 Continue\r\n\r\n", .POST, .none, true),
            ("HTTP/1.1 200\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", .GET, .none, false),
            ("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", .GET, .contentLength(1), false),
            ("HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n", .GET, .contentLength(1), true),
        ]
        for (text, method, framing, keepAlive) in cases {
            let head = try #require(try Self.parse(text, method: method).0, "\(text.debugDescription)")
            #expect(head.framing == framing, "\(text.debugDescription)")
            #expect(head.keepAlive == keepAlive, "\(text.debugDescription)")
        }
    }

    @Test func headIsKeptVerbatimAndTheBodyLeftInTheBuffer() throws {
        let (head, rest) = try Self.parse("HTTP/1.1 404 Not  Found\r\nX-A:  b \r\nContent-Length: 2\r\n\r\nhi")
        let parsed = try #require(head)
        #expect(parsed.status == 404)
        #expect(parsed.string(parsed.reason) == "Not  Found")
        #expect(parsed.string(parsed.fields[0].line) == "X-A:  b \r\n")
        #expect(parsed.string(parsed.fields[0].value) == "b")
        #expect(String(buffer: rest) == "hi")
        #expect(parsed.isInformational == false)
        #expect(try Self.parse("HTTP/1.1 103 Early Hints\r\n\r\n").0?.isInformational == true)
    }

    @Test func headArrivingByteByByte() throws {
        let text = Array("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc".utf8)
        var parser = HTTP1ResponseHeadParser(limits: Self.limits)
        var buffer = ByteBuffer()
        var head: HTTP1ResponseHead?
        for byte in text where head == nil {
            buffer.writeInteger(byte)
            head = try parser.parse(&buffer, requestMethod: .GET)
        }
        #expect(head?.framing == .contentLength(3))
        #expect(buffer.readableBytes == 0)
    }

    @Test(arguments: [
        ("HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n", HTTP1ParseError.bareLF),
        ("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", .bareCR),
        ("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", .duplicateContentLength),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            .contentLengthWithTransferEncoding
        ),
        ("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", .invalidContentLength),
        ("HTTP/1.1 200 OK\r\nX : y\r\n\r\n", .invalidFieldName),
        ("HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n", .obsoleteLineFolding),
        ("HTTP/1.1 200 OK\r\nX: \u{0}\r\n\r\n", .invalidFieldValue),
        ("HTTP/2.0 200 OK\r\n\r\n", .invalidStatusLine),
        ("HTTP/1.2 200 OK\r\n\r\n", .unsupportedVersion),
        ("HTTP/1.1 20 OK\r\n\r\n", .invalidStatusLine),
        ("HTTP/1.1 099 OK\r\n\r\n", .invalidStatusLine),
        ("HTTP/1.1 200OK\r\n\r\n", .invalidStatusLine),
        ("\r\n\r\n", .invalidStatusLine),
    ])
    func refuses(_ text: String, _ expected: HTTP1ParseError) {
        #expect(throws: expected) { try Self.parse(text) }
    }

    @Test func headLimit() throws {
        let limits = HTTP1ParserLimits(maxHeadBytes: 40, maxChunkLineBytes: 16, maxTrailerBytes: 16)
        #expect(throws: HTTP1ParseError.headTooLarge) {
            try Self.parse("HTTP/1.1 200 OK\r\nX: " + String(repeating: "a", count: 30), limits: limits)
        }
        #expect(throws: HTTP1ParseError.headTooLarge) {
            try Self.parse("HTTP/1.1 200 OK\r\nX: " + String(repeating: "a", count: 30) + "\r\n\r\n", limits: limits)
        }
        #expect(
            try Self.parse("HTTP/1.1 200 OK\r\nX: " + String(repeating: "a", count: 15) + "\r\n\r\n", limits: limits).0
                != nil
        )
    }
}

/// The response head parser against llhttp (NIOHTTP1's response decoder) on generated heads.
@Suite struct HTTP1ResponseDifferentialTests {
    @Test func generatedHeadsAreFramedIdenticallyOrRefused() {
        var random = RequestMutator(seed: 0x7265_7370_6f6e_7365)
        let statuses = [
            "200 OK", "204 No Content", "304 Not Modified", "404 Not Found", "500", "201 ", "099 x", "2000 x",
        ]
        let versions = ["HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "HTTP/2.0", "http/1.1"]
        let fields = [
            "Content-Length: 5", "Content-Length: 0", "content-length: 70", "Content-Length: 5, 5",
            "Content-Length: +5",
            "Transfer-Encoding: chunked", "Transfer-Encoding: gzip, chunked", "Transfer-Encoding: gzip",
            "Transfer-Encoding: chunked, gzip", "Connection: close", "Connection: keep-alive", "X-A:  b ", "X-B:",
            "Bad Name: x", "X-C: a\u{1}b", " folded", "Set-Cookie: a=b",
        ]
        var counts: [String: Int] = [:]
        for _ in 0..<5_000 {
            var text = "\(random.mostly(versions, valid: 2)) \(random.mostly(statuses, valid: 6))\r\n"
            for _ in 0..<random.below(4) { text += random.mostly(fields, valid: 13) + "\r\n" }
            var bytes = Array((text + "\r\n").utf8)
            if random.below(4) == 0 {
                bytes.insert(random.pick(RequestMutator.splices), at: random.below(bytes.count))
            }
            switch HTTP1ResponseDifferential.run(bytes, maxHeaderBytes: 1024) {
            case .identical: counts["identical", default: 0] += 1
            case .oursRefused(let error, let accepted):
                counts[accepted ? "ours only: \(error)" : "both refused", default: 0] += 1
                // Stricter on purpose: an empty line before the status line, a Connection value
                // that is not a token list, control characters in the reason phrase, a status
                // under 100.
                if accepted {
                    #expect(
                        [.bareLF, .invalidConnection, .invalidFieldValue, .invalidStatusLine].contains(error),
                        "\(error): \(String(decoding: bytes, as: UTF8.self).debugDescription)"
                    )
                }
            case .diverged(let why):
                Issue.record("\(why)\n\(String(decoding: bytes, as: UTF8.self).debugDescription)")
            }
        }
        print("responses: \(counts.sorted { $0.key < $1.key })")
        #expect(counts["identical", default: 0] > 1_000)
    }
}
