import GatewayCore
import GatewayProxy
import GatewayTestSupport
import NIOHTTP1
import Testing

private func head(
    _ method: HTTPMethod = .GET,
    _ uri: String = "/v1/databases",
    version: HTTPVersion = .http1_1,
    headers: [(String, String)] = [("Host", "gateway.example")]
) -> HTTPRequestHead {
    HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(headers))
}

private func validate(_ head: HTTPRequestHead, maxBodyBytes: Int64 = 1024) -> Result<RequestBodyFraming, GatewayError> {
    RequestValidation.validate(head, maxBodyBytes: maxBodyBytes)
}

private func framing(_ result: Result<RequestBodyFraming, GatewayError>) -> RequestBodyFraming? {
    if case .success(let framing) = result { return framing }
    return nil
}

/// Checks that `result` is a 400 `invalid_request`.
private func expectBadRequest(
    _ result: Result<RequestBodyFraming, GatewayError>,
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

@Suite struct RequestValidationTests {
    @Test func plainGetIsAcceptedWithoutBody() {
        #expect(validate(head()) == .success(.none))
        #expect(validate(head(.DELETE, "/v1/x?force=true&y=%20")) == .success(.none))
        #expect(validate(head(.OPTIONS, "/")) == .success(.none))
    }

    // MARK: version and method

    @Test(arguments: [
        HTTPVersion(major: 2, minor: 0), HTTPVersion(major: 1, minor: 2), HTTPVersion(major: 0, minor: 9),
        HTTPVersion(major: 3, minor: 0),
    ])
    func unsupportedVersionIs505(_ version: HTTPVersion) {
        let error = failureIfAny(of: validate(head(version: version)))
        #expect(error?.status == 505)
        #expect(error?.code == "http_version_not_supported")
    }

    @Test func http10IsAccepted() {
        #expect(validate(head(version: .http1_0, headers: [])) == .success(.none))
    }

    @Test func connectIs405() {
        let error = failureIfAny(of: validate(head(.CONNECT, "backend.example:443")))
        #expect(error == .methodNotAllowed)
        #expect(error?.status == 405)
    }

    @Test func traceIs405() {
        #expect(failureIfAny(of: validate(head(.TRACE, "/"))) == .methodNotAllowed)
    }

    @Test(arguments: [HTTPMethod.GET, .HEAD, .POST, .PUT, .PATCH, .DELETE, .OPTIONS])
    func ordinaryMethodsAreAccepted(_ method: HTTPMethod) {
        #expect(framing(validate(head(method))) == RequestBodyFraming.none)
    }

    // MARK: request target

    @Test(arguments: [
        "http://backend.example/v1",  // absolute-form
        "https://evil.example/",
        "*",  // asterisk-form
        "/v1/x#fragment",
        "/v1/x?q=1#f",
        "v1/x",
        "",
        "backend.example:443",  // authority-form
        "/a b",
        "/a\tb",
        "/caf\u{E9}",
        "/del\u{7F}",
    ])
    func oddTargetsAre400(_ uri: String) {
        expectBadRequest(validate(head(uri.hasPrefix("*") ? .OPTIONS : .GET, uri)), mentioning: "request target")
    }

    // MARK: header names and values

    @Test(arguments: ["a\u{01}b", "a\rb", "a\nb", "a\r\n b", "nul\u{0}", "del\u{7F}", "esc\u{1B}[0m"])
    func controlCharactersInValuesAre400(_ value: String) {
        expectBadRequest(
            validate(head(headers: [("Host", "gateway.example"), ("X-Note", value)])),
            mentioning: "control characters"
        )
    }

    @Test func tabAndObsTextInValuesAreAllowed() {
        #expect(
            validate(head(headers: [("Host", "gateway.example"), ("X-Note", "a\tb caf\u{E9}")])) == .success(.none)
        )
    }

    @Test(arguments: ["Bad Name", "X:Y", "", "X-\u{E9}", "X(1)", "X\"Y"])
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
        #expect(validate(head(version: .http1_0, headers: [("Accept", "*/*")])) == .success(.none))
    }

    @Test func twoHostHeadersAre400() {
        expectBadRequest(
            validate(head(headers: [("Host", "a.example"), ("Host", "b.example")])),
            mentioning: "exactly one Host"
        )
        expectBadRequest(validate(head(headers: [("Host", "a.example"), ("host", "a.example")])))
        expectBadRequest(validate(head(version: .http1_0, headers: [("Host", "a.example"), ("HOST", "b.example")])))
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
            validate(head(.POST, headers: [("Host", "g"), ("Content-Length", "5"), ("Transfer-Encoding", "chunked")])),
            mentioning: "both Content-Length and Transfer-Encoding"
        )
        expectBadRequest(
            validate(head(.POST, headers: [("Host", "g"), ("transfer-encoding", "chunked"), ("content-length", "0")]))
        )
    }

    @Test(arguments: ["chunked", "Chunked", "CHUNKED", " chunked\t"])
    func singleChunkedIsAccepted(_ value: String) {
        #expect(validate(head(.POST, headers: [("Host", "g"), ("Transfer-Encoding", value)])) == .success(.chunked))
    }

    @Test func chunkedIsNotSubjectToTheLengthLimitUpFront() {
        #expect(
            validate(head(.POST, headers: [("Host", "g"), ("Transfer-Encoding", "chunked")]), maxBodyBytes: 0)
                == .success(.chunked)
        )
    }

    @Test(arguments: [
        ["gzip, chunked"], ["chunked, gzip"], ["gzip"], ["identity"], ["chunked, chunked"], ["chunked", "chunked"],
        ["gzip", "chunked"], [""], [","],
    ])
    func otherTransferCodingsAre400(_ values: [String]) {
        let headers = [("Host", "g")] + values.map { ("Transfer-Encoding", $0) }
        expectBadRequest(validate(head(.POST, headers: headers)), mentioning: "Transfer-Encoding")
    }

    @Test func emptyListElementsAroundChunkedAreIgnored() {
        #expect(
            validate(head(.POST, headers: [("Host", "g"), ("Transfer-Encoding", "chunked,")])) == .success(.chunked)
        )
        #expect(
            validate(head(.POST, headers: [("Host", "g"), ("Transfer-Encoding", ", chunked")])) == .success(.chunked)
        )
    }

    @Test func chunkedOnHTTP10Is400() {
        expectBadRequest(
            validate(head(.POST, version: .http1_0, headers: [("Host", "g"), ("Transfer-Encoding", "chunked")])),
            mentioning: "Transfer-Encoding"
        )
    }

    // MARK: Content-Length

    @Test func contentLengthGivesLengthFraming() {
        #expect(
            validate(head(.POST, headers: [("Host", "g"), ("Content-Length", "5")])) == .success(.contentLength(5))
        )
    }

    @Test func repeatedEqualContentLengthIsAccepted() {
        #expect(
            validate(head(.POST, headers: [("Host", "g"), ("Content-Length", "5, 5")])) == .success(.contentLength(5))
        )
        #expect(
            validate(head(.POST, headers: [("Host", "g"), ("Content-Length", "5"), ("Content-Length", "5")]))
                == .success(.contentLength(5))
        )
        #expect(
            validate(head(.POST, headers: [("Host", "g"), ("Content-Length", " 7 ,7")])) == .success(.contentLength(7))
        )
    }

    @Test func conflictingContentLengthsAre400() {
        expectBadRequest(
            validate(head(.POST, headers: [("Host", "g"), ("Content-Length", "5, 6")])),
            mentioning: "conflicting"
        )
        expectBadRequest(
            validate(head(.POST, headers: [("Host", "g"), ("Content-Length", "5"), ("Content-Length", "6")])),
            mentioning: "conflicting"
        )
    }

    @Test(arguments: [
        "+5", "-5", "5.0", "0x5", "5a", "", " ", "5,", ",5", "5,,5", "1e3", "1000000000000000000",
        "99999999999999999999",
    ])
    func malformedContentLengthIs400(_ value: String) {
        expectBadRequest(
            validate(head(.POST, headers: [("Host", "g"), ("Content-Length", value)])),
            mentioning: "decimal"
        )
    }

    @Test func bodyOverLimitIs413() {
        let error = failureIfAny(
            of: validate(head(.POST, headers: [("Host", "g"), ("Content-Length", "1025")]), maxBodyBytes: 1024)
        )
        #expect(error?.status == 413)
        #expect(error?.code == "request_too_large")
        #expect(error == .bodyTooLarge(limit: 1024))
        #expect(error?.description.contains("1024") == true)
    }

    @Test func hugeLengthWithinDigitLimitIs413() {
        let error = failureIfAny(
            of: validate(head(.PUT, headers: [("Host", "g"), ("Content-Length", "999999999999999999")]))
        )
        #expect(error?.status == 413)
    }

    @Test func bodyAtLimitIsAccepted() {
        #expect(
            validate(head(.POST, headers: [("Host", "g"), ("Content-Length", "1024")]), maxBodyBytes: 1024)
                == .success(.contentLength(1024))
        )
    }

    @Test func zeroLengthIsNoBody() {
        #expect(validate(head(.POST, headers: [("Host", "g"), ("Content-Length", "0")])) == .success(.none))
        #expect(
            validate(head(.POST, headers: [("Host", "g"), ("Content-Length", "0, 0")]), maxBodyBytes: 0)
                == .success(.none)
        )
        #expect(validate(head(.POST, headers: [("Host", "g"), ("Content-Length", "000")])) == .success(.none))
    }

    @Test func checksRunInAFixedOrder() {
        // Version before method before target before headers.
        #expect(
            failureIfAny(of: validate(head(.TRACE, "*", version: HTTPVersion(major: 2, minor: 0), headers: [])))?.status
                == 505
        )
        #expect(failureIfAny(of: validate(head(.TRACE, "*", headers: [])))?.status == 405)
        expectBadRequest(validate(head(.GET, "*", headers: [("Content-Length", "5, 6")])), mentioning: "request target")
    }
}
