import GatewayHTTP1
import Testing

/// Cases that bounded the proxy's former byte scanner in front of NIO's decoder (which
/// followed the framing to find chunk-size lines and trailers): the parser must follow the
/// same framing, so a later request on the connection is still bounded.
@Suite struct HTTP1FramingFollowTests {
    private static let limits = HTTP1ParserLimits(maxHeadBytes: 4096, maxChunkLineBytes: 16, maxTrailerBytes: 40)
    private static let boundedNext =
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;" + String(repeating: "e", count: 20)

    @Test func leadingZerosCountAgainstTheChunkLine() {
        let text =
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + String(repeating: "0", count: 40)
            + "5\r\nhello\r\n0\r\n\r\n"
        #expect(parse(text, limits: Self.limits).error == .chunkLineTooLong)
    }

    @Test func longTrailerSectionIsRefused() {
        let text =
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
            + String(repeating: "X-A: 1\r\n", count: 6)
        #expect(parse(text, limits: Self.limits).error == .trailersTooLarge)
    }

    @Test func fixedLengthBodyIsBodyWhateverItHolds() {
        let body = "0;" + String(repeating: "e", count: 100)
        let text = "POST / HTTP/1.1\r\nHost: a\r\ncontent-length: \(body.utf8.count)\r\n\r\n" + body
        let parsed = parse(text + Self.boundedNext, limits: Self.limits)
        #expect(parsed.bodies.first == Array(body.utf8))
        #expect(parsed.heads.count == 2)
        #expect(parsed.error == .chunkLineTooLong)
    }

    @Test func upgradeWithoutConnectionUpgradeIsAnOrdinaryRequest() {
        for upgrade in ["Upgrade: x\r\n", "Upgrade: websocket\r\nConnection: keep-alive\r\n"] {
            let parsed = parse(
                "GET / HTTP/1.1\r\nHost: a\r\n" + upgrade + "\r\n" + Self.boundedNext,
                limits: Self.limits
            )
            #expect(parsed.heads.count == 2, "\(upgrade)")
            #expect(parsed.error == .chunkLineTooLong, "\(upgrade)")
        }
    }

    @Test func framingValuesPaddedWithWhitespaceAreStillFollowed() {
        let padding = String(repeating: " ", count: 600)
        for (framing, body) in [
            ("Content-Length: 0" + padding, ""),
            ("Content-Length:" + padding + "0", ""),
            ("Content-Length:" + padding + "3" + padding, "abc"),
        ] {
            let parsed = parse(
                "POST / HTTP/1.1\r\nHost: a\r\n" + framing + "\r\n\r\n" + body + Self.boundedNext,
                limits: Self.limits
            )
            #expect(parsed.heads.count == 2, "\(framing.prefix(20))")
            #expect(parsed.error == .chunkLineTooLong, "\(framing.prefix(20))")
        }
        let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:" + padding + "chunked" + padding + "\r\n\r\n"
        #expect(parse(head + "1;" + String(repeating: "e", count: 20), limits: Self.limits).error == .chunkLineTooLong)
    }
}
