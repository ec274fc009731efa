import GatewayCore
import GatewayHTTP1
import GatewayTestSupport
import NIOCore
import Testing

@testable import GatewayProxy

/// A request head as a client sends it.
private func head(
    _ method: String = "GET",
    _ target: String = "/v1/databases",
    version: String = "HTTP/1.1",
    headers: [(String, String)] = [("Host", "gateway.example")]
) -> String {
    var text = "\(method) \(target) \(version)\r\n"
    for (name, value) in headers { text += "\(name): \(value)\r\n" }
    return text + "\r\n"
}

/// The gateway's verdict on a head: the client connection's parser, then the policy checks
/// `RequestValidation` keeps (what `ProxyHandler` runs for every request).
private func validate(_ text: String, maxBodyBytes: Int64 = 1024) -> Result<HTTP1BodyFraming, GatewayError> {
    var parser = HTTP1RequestParser(limits: ClientRequestDecoder.limits(maxHeaderBytes: 8192))
    parser.feed(ByteBuffer(string: text))
    switch parser.next() {
    case .head(let head):
        return RequestValidation.validate(head, maxBodyBytes: maxBodyBytes)
    case .error(let error):
        return .failure(error.gatewayError(maxHeaderBytes: 8192))
    case .body, .end, nil:
        Issue.record("no head and no refusal for \(text.debugDescription)")
        return .failure(.internalError)
    }
}

/// Checks that `result` is a 400 `invalid_request`.
private func expectBadRequest(
    _ result: Result<HTTP1BodyFraming, GatewayError>,
    mentioning fragment: String? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let error = failureIfAny(of: result)
    #expect(error?.status == 400, "\(result)", sourceLocation: sourceLocation)
    #expect(error?.code == "invalid_request", sourceLocation: sourceLocation)
    if let fragment {
        #expect(
            error?.description.contains(fragment) == true,
            "\(error?.description ?? "")",
            sourceLocation: sourceLocation
        )
    }
}

/// Requests as the gateway judges them before routing: the strict parser refuses the syntax
/// it does not accept, `RequestValidation` adds TRACE, the body limit and `Expect`.
@Suite struct RequestValidationTests {
    @Test func plainGetIsAcceptedWithoutBody() {
        #expect(validate(head()) == .success(.none))
        #expect(validate(head("DELETE", "/v1/x?force=true&y=%20")) == .success(.none))
        #expect(validate(head("OPTIONS", "/")) == .success(.none))
    }

    // MARK: version and method

    @Test(arguments: ["HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3.0"])
    func unsupportedVersionIs505(_ version: String) {
        let error = failureIfAny(of: validate(head(version: version)))
        #expect(error?.status == 505)
        #expect(error?.code == "http_version_not_supported")
    }

    @Test func http10IsAccepted() {
        #expect(validate(head(version: "HTTP/1.0", headers: [])) == .success(.none))
    }

    @Test func connectIs405() {
        let error = failureIfAny(of: validate(head("CONNECT", "backend.example:443")))
        #expect(error == .methodNotAllowed)
        #expect(error?.status == 405)
    }

    @Test func traceIs405() {
        #expect(failureIfAny(of: validate(head("TRACE", "/"))) == .methodNotAllowed)
        #expect(failureIfAny(of: validate(head("TRACE", "/v1/x", headers: [("Host", "g")]))) == .methodNotAllowed)
    }

    @Test(arguments: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    func ordinaryMethodsAreAccepted(_ method: String) {
        #expect(validate(head(method)) == .success(.none))
    }

    // MARK: request target

    @Test(arguments: [
        "http://backend.example/v1",  // absolute-form
        "https://evil.example/",
        "*",  // asterisk-form
        "/v1/x#fragment",
        "/v1/x?q=1#f",
        "v1/x",
        "backend.example:443",  // authority-form
        "/a\tb",
        "/caf\u{E9}",
        "/del\u{7F}",
    ])
    func oddTargetsAre400(_ target: String) {
        expectBadRequest(
            validate(head(target.hasPrefix("*") ? "OPTIONS" : "GET", target)),
            mentioning: "request target"
        )
    }

    @Test(arguments: ["", "/a b"])
    func targetsThatBreakTheRequestLineAre400(_ target: String) {
        expectBadRequest(validate(head("GET", target)), mentioning: "request line")
    }

    // MARK: header names and values

    @Test(arguments: ["a\u{01}b", "nul\u{0}", "del\u{7F}", "esc\u{1B}[0m"])
    func controlCharactersInValuesAre400(_ value: String) {
        expectBadRequest(
            validate(head(headers: [("Host", "gateway.example"), ("X-Note", value)])),
            mentioning: "control characters"
        )
    }

    @Test(arguments: ["a\rb", "a\nb", "a\r\n b"])
    func lineBreaksInValuesAre400(_ value: String) {
        expectBadRequest(validate(head(headers: [("Host", "gateway.example"), ("X-Note", value)])))
    }

    @Test func tabAndObsTextInValuesAreAllowed() {
        #expect(
            validate(head(headers: [("Host", "gateway.example"), ("X-Note", "a\tb caf\u{E9}")])) == .success(.none)
        )
    }

    @Test(arguments: ["Bad Name", "", "X-\u{E9}", "X(1)", "X\"Y"])
    func invalidHeaderNamesAre400(_ name: String) {
        expectBadRequest(
            validate(head(headers: [("Host", "gateway.example"), (name, "v")])),
            mentioning: "header name"
        )
    }

    // MARK: Host

    @Test func missingHostOnHTTP11Is400() {
        expectBadRequest(validate(head(headers: [("Accept", "*/*")])), mentioning: "Host")
    }

    @Test func missingHostOnHTTP10IsAllowed() {
        #expect(validate(head(version: "HTTP/1.0", headers: [("Accept", "*/*")])) == .success(.none))
    }

    @Test func twoHostHeadersAre400() {
        expectBadRequest(
            validate(head(headers: [("Host", "a.example"), ("Host", "b.example")])),
            mentioning: "exactly one Host"
        )
        expectBadRequest(validate(head(headers: [("Host", "a.example"), ("host", "a.example")])))
        expectBadRequest(validate(head(version: "HTTP/1.0", headers: [("Host", "a.example"), ("HOST", "b.example")])))
    }

    @Test(arguments: [
        "gateway.example", "gateway.example:8080", "127.0.0.1", "127.0.0.1:1", "[::1]", "[::1]:8443",
        "[2001:db8::1]:80", "GATEWAY.Example", "my_host~1.local", "localhost:65535",
    ])
    func validHostsAreAccepted(_ host: String) {
        #expect(validate(head(headers: [("Host", host)])) == .success(.none))
    }

    @Test(arguments: [
        "", "exa mple.com", "host:", "host:abc", "host:123456", "host:80:80", ":80", "[::1", "[]", "[::1]x",
        "[::1]:", "[g::1]", "user@host", "host/path", "host?x", "ho\u{E9}st", "host,other",
        String(repeating: "a", count: 262),
    ])
    func invalidHostsAre400(_ host: String) {
        expectBadRequest(validate(head(headers: [("Host", host)])), mentioning: "Host")
    }

    // MARK: Transfer-Encoding

    @Test func contentLengthAndTransferEncodingTogetherAre400() {
        expectBadRequest(
            validate(
                head("POST", headers: [("Host", "g"), ("Content-Length", "5"), ("Transfer-Encoding", "chunked")])
            ),
            mentioning: "both Content-Length and Transfer-Encoding"
        )
        expectBadRequest(
            validate(head("POST", headers: [("Host", "g"), ("transfer-encoding", "chunked"), ("content-length", "0")]))
        )
    }

    @Test(arguments: ["chunked", "Chunked", "CHUNKED", " chunked\t"])
    func singleChunkedIsAccepted(_ value: String) {
        #expect(validate(head("POST", headers: [("Host", "g"), ("Transfer-Encoding", value)])) == .success(.chunked))
    }

    @Test func chunkedIsNotSubjectToTheLengthLimitUpFront() {
        #expect(
            validate(head("POST", headers: [("Host", "g"), ("Transfer-Encoding", "chunked")]), maxBodyBytes: 0)
                == .success(.chunked)
        )
    }

    /// Only one `chunked`, alone: list forms (even with empty elements) are refused, as llhttp
    /// in strict mode refused them in front of the old validation.
    @Test(arguments: [
        ["gzip, chunked"], ["chunked, gzip"], ["gzip"], ["identity"], ["chunked, chunked"], ["chunked", "chunked"],
        ["gzip", "chunked"], [""], [","], ["chunked,"], [", chunked"],
    ])
    func otherTransferCodingsAre400(_ values: [String]) {
        let headers = [("Host", "g")] + values.map { ("Transfer-Encoding", $0) }
        expectBadRequest(validate(head("POST", headers: headers)), mentioning: "Transfer-Encoding")
    }

    @Test func chunkedOnHTTP10Is400() {
        expectBadRequest(
            validate(head("POST", version: "HTTP/1.0", headers: [("Host", "g"), ("Transfer-Encoding", "chunked")])),
            mentioning: "Transfer-Encoding"
        )
    }

    // MARK: Content-Length

    @Test func contentLengthGivesLengthFraming() {
        #expect(
            validate(head("POST", headers: [("Host", "g"), ("Content-Length", "5")])) == .success(.contentLength(5))
        )
        #expect(
            validate(head("POST", headers: [("Host", "g"), ("Content-Length", " 7 ")])) == .success(.contentLength(7))
        )
    }

    /// A length given twice is refused even when both agree (llhttp refused it too).
    @Test func repeatedContentLengthIs400() {
        expectBadRequest(
            validate(head("POST", headers: [("Host", "g"), ("Content-Length", "5"), ("Content-Length", "5")])),
            mentioning: "given once"
        )
        expectBadRequest(
            validate(head("POST", headers: [("Host", "g"), ("Content-Length", "5"), ("Content-Length", "6")]))
        )
    }

    @Test(arguments: [
        "+5", "-5", "5.0", "0x5", "5a", "", " ", "5,", ",5", "5,,5", "5, 5", "5, 6", "1e3", "1000000000000000000",
        "99999999999999999999",
    ])
    func malformedContentLengthIs400(_ value: String) {
        expectBadRequest(
            validate(head("POST", headers: [("Host", "g"), ("Content-Length", value)])),
            mentioning: "decimal"
        )
    }

    @Test func bodyOverLimitIs413() {
        let error = failureIfAny(
            of: validate(head("POST", headers: [("Host", "g"), ("Content-Length", "1025")]), maxBodyBytes: 1024)
        )
        #expect(error?.status == 413)
        #expect(error?.code == "request_too_large")
        #expect(error == .bodyTooLarge(limit: 1024))
        #expect(error?.description.contains("1024") == true)
    }

    @Test func hugeLengthWithinDigitLimitIs413() {
        let error = failureIfAny(
            of: validate(head("PUT", headers: [("Host", "g"), ("Content-Length", "999999999999999999")]))
        )
        #expect(error?.status == 413)
    }

    @Test func bodyAtLimitIsAccepted() {
        #expect(
            validate(head("POST", headers: [("Host", "g"), ("Content-Length", "1024")]), maxBodyBytes: 1024)
                == .success(.contentLength(1024))
        )
    }

    @Test func zeroLengthIsNoBody() {
        #expect(validate(head("POST", headers: [("Host", "g"), ("Content-Length", "0")])) == .success(.none))
        #expect(
            validate(head("POST", headers: [("Host", "g"), ("Content-Length", "0")]), maxBodyBytes: 0)
                == .success(.none)
        )
        #expect(validate(head("POST", headers: [("Host", "g"), ("Content-Length", "000")])) == .success(.none))
    }

    // MARK: Expect

    @Test(arguments: ["100-continue", "100-Continue", "100-CONTINUE"])
    func continueIsHonouredOnHTTP11(_ value: String) {
        let text = head("POST", headers: [("Host", "g"), ("Content-Length", "5"), ("Expect", value)])
        #expect(validate(text) == .success(.contentLength(5)))
    }

    @Test func otherExpectationsAre417() {
        for headers in [
            [("Host", "g"), ("Expect", "something-else")],
            [("Host", "g"), ("Expect", "100-continue"), ("Expect", "100-continue")],
            [("Host", "g"), ("Expect", "")],
        ] {
            let error = failureIfAny(of: validate(head("POST", headers: headers)))
            #expect(error?.status == 417, "\(headers)")
            #expect(error?.code == "expectation_failed")
        }
        // HTTP/1.0 has no interim responses.
        let error = failureIfAny(of: validate(head("POST", version: "HTTP/1.0", headers: [("Expect", "100-continue")])))
        #expect(error?.status == 417)
    }

    @Test func checksRunInAFixedOrder() {
        // The parser's refusals come first (version, then target), then policy: TRACE before
        // the body limit before `Expect`.
        #expect(failureIfAny(of: validate(head("TRACE", "*", version: "HTTP/2.0", headers: [])))?.status == 400)
        #expect(failureIfAny(of: validate(head("TRACE", "/", version: "HTTP/2.0", headers: [])))?.status == 505)
        let traceWithBody = head("TRACE", "/", headers: [("Host", "g"), ("Content-Length", "5000"), ("Expect", "x")])
        #expect(failureIfAny(of: validate(traceWithBody))?.status == 405)
        let bigWithExpect = head("POST", "/", headers: [("Host", "g"), ("Content-Length", "5000"), ("Expect", "x")])
        #expect(failureIfAny(of: validate(bigWithExpect))?.status == 413)
    }
}
