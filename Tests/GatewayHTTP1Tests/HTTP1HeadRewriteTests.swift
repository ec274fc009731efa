import GatewayHTTP1
import NIOCore
import Testing

@Suite struct HTTP1HeadRewriteTests {
    static func head(_ text: String) throws -> HTTP1RequestHead {
        try #require(parse(text).heads.first)
    }

    static func written(_ head: HTTP1RequestHead, _ rewrite: HTTP1HeadRewrite) -> String {
        var buffer = ByteBuffer()
        rewrite.write(head, into: &buffer)
        return String(buffer: buffer)
    }

    @Test func untouchedFieldsAreCopiedVerbatim() throws {
        let head = try Self.head("GET /a?b HTTP/1.0\r\nHost: h\r\nX-Odd:\t spaced  value \r\nAccept: */*\r\n\r\n")
        #expect(
            Self.written(head, HTTP1HeadRewrite())
                == "GET /a?b HTTP/1.1\r\nHost: h\r\nX-Odd:\t spaced  value \r\nAccept: */*\r\n\r\n"
        )
    }

    @Test func hopByHopAndConnectionNominatedFieldsAreRemoved() throws {
        let head = try Self.head(
            "POST /u HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret, upgrade\r\nKeep-Alive: 5\r\n"
                + "Proxy-Connection: x\r\nTE: trailers\r\nTrailer: X\r\nTransfer-Encoding: chunked\r\n"
                + "Upgrade: websocket\r\nProxy-Authorization: Basic x\r\nx-secret: 1\r\nX-SECRET: 2\r\nKept: yes\r\n\r\n"
        )
        #expect(Self.written(head, HTTP1HeadRewrite()) == "POST /u HTTP/1.1\r\nHost: h\r\nKept: yes\r\n\r\n")
    }

    @Test func namesAndPrefixesAreDroppedAndLinesAppended() throws {
        let head = try Self.head(
            "GET /v1/x HTTP/1.1\r\nHost: client\r\nX-DBAudit-Subject: forged\r\nx-dbaudit-scopes: admin\r\n"
                + "X-Forwarded-For: 6.6.6.6\r\nContent-Length: 0\r\nAuthorization: Bearer k\r\nX-DBAuditor: kept\r\n\r\n"
        )
        let rewrite = HTTP1HeadRewrite(
            target: "/v1/x?normalized",
            droppedNames: ["host", "content-length", "x-forwarded-for"],
            droppedPrefixes: ["x-dbaudit-"],
            appended: [("Host", "upstream:8080"), ("X-DBAudit-Subject", "alice\r\nX-Evil: 1")]
        )
        #expect(
            Self.written(head, rewrite)
                == "GET /v1/x?normalized HTTP/1.1\r\nAuthorization: Bearer k\r\nX-DBAuditor: kept\r\n"
                + "Host: upstream:8080\r\nX-DBAudit-Subject: alice  X-Evil: 1\r\n\r\n"
        )
    }

    @Test func theRewrittenHeadParsesAgain() throws {
        let head = try Self.head("PATCH /p HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nA: 1\r\n\r\n")
        let text = Self.written(head, HTTP1HeadRewrite(appended: [("X-Request-Id", "r1")])) + "hi"
        let again = parse(text)
        #expect(again.error == nil)
        #expect(again.bodies == [Array("hi".utf8)])
        let reparsed = try #require(again.heads.first)
        #expect(reparsed.value(reparsed.requestID) == "r1")
        #expect(reparsed.fields.count == 4)
    }
}
