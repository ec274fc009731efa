import GatewayHTTP1
import GatewayHTTP1Oracle
import NIOCore
import Testing

/// What the parser made of some input, as text: one entry per event.
private enum Seen: Equatable {
    case head(Int)
    case body(String)
    case end([String])
    case error(HTTP1ParseError)
}

private struct Run {
    var parser = HTTP1ResponseParser(
        limits: HTTP1ParserLimits(maxHeadBytes: 1024, maxChunkLineBytes: 32, maxTrailerBytes: 256)
    )

    init(method: HTTP1Method = .GET) {
        self.parser.start(requestMethod: method)
    }

    /// Feeds each piece in turn and collects the events, body pieces joined.
    mutating func feed(_ pieces: String...) -> [Seen] {
        var seen: [Seen] = []
        for piece in pieces {
            self.parser.feed(ByteBuffer(string: piece))
            while let event = self.parser.next() {
                Self.append(event, to: &seen)
            }
        }
        return seen
    }

    static func append(_ event: HTTP1ResponseEvent, to seen: inout [Seen]) {
        switch event {
        case .head(let head): seen.append(.head(head.status))
        case .body(let buffer):
            let text = String(buffer: buffer)
            if case .body(let before) = seen.last {
                seen[seen.count - 1] = .body(before + text)
            } else {
                seen.append(.body(text))
            }
        case .end(let trailers):
            seen.append(.end(trailers.map { t in t.fields.map { "\(t.string($0.name))=\(t.string($0.value))" } } ?? []))
        case .error(let error): seen.append(.error(error))
        }
    }
}

@Suite struct HTTP1ResponseParserTests {
    @Test func contentLengthBodyInPiecesAsSlicesOfTheInput() {
        var run = Run()
        #expect(
            run.feed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe", "llo")
                == [.head(200), .body("hello"), .end([])]
        )
        #expect(run.parser.bufferedBytes == 0)
    }

    @Test func bodySliceSharesTheReadBuffersStorage() {
        var parser = HTTP1ResponseParser(limits: HTTP1ParserLimits(maxHeaderBytes: 1024))
        parser.start(requestMethod: .GET)
        let read = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")
        parser.feed(read)
        guard case .head = parser.next(), case .body(let body) = parser.next() else {
            Issue.record("no head and body")
            return
        }
        let same = read.withUnsafeReadableBytes { whole in
            body.withUnsafeReadableBytes { slice in slice.baseAddress == whole.baseAddress! + (whole.count - 3) }
        }
        #expect(same)
    }

    @Test func chunkedBodySplitAtEveryByteIsDecodedWithTrailers() {
        let text =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=\"v\"\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\n"
        var run = Run()
        let seen = run.feed(text)
        #expect(seen == [.head(200), .body("hello0123456789"), .end(["X-Sum=1"])])
        var byByte = Run()
        var collected: [Seen] = []
        for byte in text.utf8 {
            byByte.parser.feed(ByteBuffer(bytes: [byte]))
            while let event = byByte.parser.next() { Run.append(event, to: &collected) }
        }
        #expect(collected == seen)
    }

    @Test func interimResponsesAreDroppedAndHeadHasNoBody() {
        var run = Run(method: .HEAD)
        #expect(
            run.feed(
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
            )
                == [.head(200), .end([])]
        )
    }

    @Test func switchingProtocolsIsReturnedForTheCallerToRefuse() {
        var run = Run()
        #expect(run.feed("HTTP/1.1 101 Switching Protocols\r\n\r\n") == [.head(101), .end([])])
    }

    @Test func noBodyStatuses() {
        for status in ["204 No Content", "304 Not Modified"] {
            var run = Run()
            #expect(
                run.feed("HTTP/1.1 \(status)\r\nContent-Length: 7\r\n\r\n") == [
                    .head(Int(status.prefix(3))!), .end([]),
                ]
            )
        }
    }

    @Test func untilCloseBodyEndsWithTheConnection() {
        var run = Run()
        #expect(run.feed("HTTP/1.0 200 OK\r\n\r\nab", "cd") == [.head(200), .body("abcd")])
        #expect(run.parser.isReadingUntilClose)
        guard case .end(nil) = run.parser.finish() else {
            Issue.record("no end at the close")
            return
        }
        #expect(run.parser.finish().map { _ in true } == nil)
    }

    @Test func aCutShortBodyDoesNotEndAtTheClose() {
        var run = Run()
        _ = run.feed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe")
        #expect(run.parser.finish().map { _ in true } == nil)
    }

    @Test func bytesAfterTheResponseAreKeptAsideNeverParsed() {
        var run = Run()
        #expect(
            run.feed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n")
                == [.head(200), .body("ok"), .end([])]
        )
        #expect(run.parser.bufferedBytes > 0)
        #expect(run.feed("more") == [])
        run.parser.start(requestMethod: .GET)
        #expect(run.parser.bufferedBytes == 0)
        #expect(run.feed("HTTP/1.1 204 No Content\r\n\r\n") == [.head(204), .end([])])
    }

    @Test func nothingIsParsedBeforeAnExchangeStarts() {
        var parser = HTTP1ResponseParser(limits: HTTP1ParserLimits(maxHeaderBytes: 1024))
        parser.feed(ByteBuffer(string: "HTTP/1.1 204 No Content\r\n\r\n"))
        #expect(parser.next() == nil)
    }

    @Test func brokenChunkedFramingIsRefused() {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        let cases: [(String, HTTP1ParseError)] = [
            ("5\r\nhelloX\r\n0\r\n\r\n", .bareLF),
            ("5\r\nhello\rX0\r\n\r\n", .bareCR),
            ("5\nhello\r\n", .bareLF),
            ("z\r\n", .invalidChunkSize),
            ("5 \r\n", .invalidChunkSize),
            ("5;\r\n", .invalidChunkExtension),
            ("fffffffffffffffff\r\n", .invalidChunkSize),
            ("5;" + String(repeating: "a", count: 40) + "\r\n", .chunkLineTooLong),
            ("0\r\nX-A: b\r\n c\r\n\r\n", .obsoleteLineFolding),
            ("0\r\nBad Name: x\r\n\r\n", .invalidFieldName),
            ("0\r\nX-A: " + String(repeating: "a", count: 300) + "\r\n\r\n", .trailersTooLarge),
        ]
        for (body, error) in cases {
            var run = Run()
            let seen = run.feed(head + body)
            #expect(seen.last == .error(error), "\(body.debugDescription): \(seen)")
            #expect(run.feed("HTTP/1.1 200 OK\r\n\r\n") == [], "nothing is read after a refusal")
        }
    }

    @Test func trailerFieldsThatFrameAreReadForTheForwarderToDrop() {
        var run = Run()
        #expect(
            run.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 3\r\nX-A: 1\r\n\r\n")
                == [.head(200), .end(["Content-Length=3", "X-A=1"])]
        )
    }
}

/// The whole-response parser against llhttp (NIOHTTP1's response decoder) on generated
/// responses: bodies framed by length, chunks (sizes, extensions, trailers mutated the ways
/// smuggling attacks do) or the close, to GET and HEAD.
@Suite struct HTTP1ResponseBodyDifferentialTests {
    @Test func generatedResponsesAreReadIdenticallyOrRefused() {
        var random = RequestMutator(seed: 0x626f_6479)
        let heads = [
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n",
            "HTTP/1.0 200 OK\r\n", "HTTP/1.1 204 No Content\r\n",
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n",
        ]
        let trailers = ["", "X-Sum: 1\r\n", "X-A: b\r\nX-B: c\r\n", "Bad Name: x\r\n", "X-F: a\r\n b\r\n", "X-C:\r\n"]
        var counts: [String: Int] = [:]
        for _ in 0..<5_000 {
            var text = random.mostly(heads, valid: 3) + "\r\n"
            for _ in 0..<random.below(3) {
                let size = random.mostly(RequestMutator.chunkSizes, valid: 5)
                text += size + "\r\n" + String(repeating: "x", count: 5) + "\r\n"
            }
            text +=
                random.mostly(["0\r\n", "0;e=1\r\n", "00\r\n"], valid: 3) + random.mostly(trailers, valid: 3) + "\r\n"
            var bytes = Array(text.utf8)
            if random.below(4) == 0 {
                bytes.insert(random.pick(RequestMutator.splices), at: random.below(bytes.count))
            }
            if random.below(6) == 0 {
                bytes = Array(bytes.prefix(random.below(bytes.count)))
            }
            let method: HTTP1Method = random.below(8) == 0 ? .HEAD : .GET
            switch HTTP1ResponseDifferential.runMessage(bytes, method: method, maxHeaderBytes: 1024) {
            case .identical: counts["identical", default: 0] += 1
            case .oursRefused(let error, let accepted):
                counts[accepted ? "ours only: \(error)" : "both refused", default: 0] += 1
            case .diverged(let why):
                Issue.record("\(why)\n\(String(decoding: bytes, as: UTF8.self).debugDescription)")
            }
        }
        print("response bodies: \(counts.sorted { $0.key < $1.key })")
        #expect(counts["identical", default: 0] > 2_000)
    }
}
