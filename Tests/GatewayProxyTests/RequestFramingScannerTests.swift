import Testing

@testable import GatewayProxy

private func scanner() -> RequestFramingScanner {
    RequestFramingScanner(maxChunkLineBytes: 16, maxTrailerBytes: 40)
}

private func scan(_ scanner: inout RequestFramingScanner, _ text: String) -> RequestFramingScanner.Verdict {
    scanner.scan(Array(text.utf8))
}

@Suite struct RequestFramingScannerTests {
    @Test func shortExtensionsAndTrailersPass() {
        var machine = scanner()
        #expect(
            scan(
                &machine,
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"
            ) == .accept
        )
        #expect(!machine.isPassingThrough)
    }

    @Test func longChunkLineIsRefusedAtTheByteThatCrossesTheBound() {
        var machine = scanner()
        let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        #expect(scan(&machine, head) == .accept)
        #expect(scan(&machine, "5;" + String(repeating: "e", count: 14)) == .accept)
        #expect(scan(&machine, "ee") == .tooLong(offset: 0))
    }

    @Test func leadingZerosCountAgainstTheLine() {
        var machine = scanner()
        let text =
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + String(repeating: "0", count: 40)
            + "5\r\n"
        if case .tooLong = scan(&machine, text) {} else { Issue.record("leading zeros were not bounded") }
    }

    @Test func longTrailerSectionIsRefused() {
        var machine = scanner()
        let text =
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
            + String(repeating: "X-A: 1\r\n", count: 6)
        if case .tooLong = scan(&machine, text) {} else { Issue.record("trailers were not bounded") }
    }

    @Test func fixedLengthBodyIsSkippedWhateverItHolds() {
        var machine = scanner()
        let body = "0;" + String(repeating: "e", count: 100)
        let text = "POST / HTTP/1.1\r\nHost: a\r\ncontent-length: \(body.utf8.count)\r\n\r\n" + body
        #expect(scan(&machine, text) == .accept)
        // The next pipelined request is chunked and still bounded.
        #expect(
            scan(
                &machine,
                "POST / HTTP/1.1\r\nHost: a\r\nTRANSFER-ENCODING: chunked\r\n\r\n1;" + String(repeating: "e", count: 20)
            ) != .accept
        )
    }

    @Test func chunkedBodiesSplitAnywhereAreFollowed() {
        let text =
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"
        for split in 1..<text.utf8.count {
            var machine = scanner()
            let bytes = Array(text.utf8)
            #expect(machine.scan(bytes[0..<split]) == .accept)
            #expect(machine.scan(bytes[split...]) == .accept)
            #expect(!machine.isPassingThrough)
        }
    }

    @Test func upgradeWithoutConnectionUpgradeIsAnOrdinaryRequest() {
        // llhttp upgrades only with `Connection: upgrade` (or CONNECT); otherwise it parses on.
        for upgrade in ["Upgrade: x\r\n", "Upgrade: websocket\r\nConnection: keep-alive\r\n"] {
            var machine = scanner()
            #expect(scan(&machine, "GET / HTTP/1.1\r\nHost: a\r\n" + upgrade + "\r\n") == .accept)
            #expect(!machine.isPassingThrough, "\(upgrade)")
            let next =
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;" + String(repeating: "e", count: 20)
            #expect(scan(&machine, next) != .accept, "\(upgrade)")
        }
    }

    @Test func framingValuesPaddedWithWhitespaceAreStillFollowed() {
        let padding = String(repeating: " ", count: 600)
        for framing in [
            "Content-Length: 0" + padding,
            "Content-Length:" + padding + "0",
            "Content-Length:\t" + padding + "3" + padding + "\r\n\r\nabc",
        ] {
            var machine = scanner()
            #expect(scan(&machine, "POST / HTTP/1.1\r\nHost: a\r\n" + framing + "\r\n\r\n") == .accept)
            #expect(!machine.isPassingThrough, "\(framing.prefix(20))")
            let next =
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;" + String(repeating: "e", count: 20)
            #expect(scan(&machine, next) != .accept, "\(framing.prefix(20))")
        }
        var machine = scanner()
        let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:" + padding + "chunked" + padding + "\r\n\r\n"
        #expect(scan(&machine, head + "1;" + String(repeating: "e", count: 20)) != .accept)
    }

    @Test func unusualHeadsStopTheScannerRightAfterTheirHead() {
        for head in [
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nconnection: keep-alive,  UPGRADE\r\nUpgrade: h2c\r\n\r\n",
            "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        ] {
            var machine = scanner()
            #expect(scan(&machine, head + "5\r\nhello") == .stopFollowing(offset: head.utf8.count), "\(head)")
            #expect(machine.isPassingThrough, "\(head)")
            #expect(scan(&machine, String(repeating: "e", count: 100)) == .accept)
        }
    }
}
