import GatewayCore
import NIOHTTP1
import Testing

@testable import GatewayProxy

@Suite struct OwnResponseHeadTests {
    @Test func errorHeadHasTypeLengthNoStoreIDCloseAndHSTS() {
        let response = LocalResponse.json(GatewayError.unauthorized("no"), requestID: "rid-1")
        let fields = OwnResponseHead.fields(
            for: response,
            requestID: "rid-1",
            close: true,
            strictTransportSecurity: "max-age=60"
        )
        #expect(fields["Content-Type"] == ["application/json"])
        #expect(fields["Content-Length"] == [String(response.body.count)])
        #expect(fields["Cache-Control"] == ["no-store"])
        #expect(fields["X-Request-Id"] == ["rid-1"])
        #expect(fields["Connection"] == ["close"])
        #expect(fields["Strict-Transport-Security"] == ["max-age=60"])
        #expect(fields["WWW-Authenticate"].count == 1)
    }

    @Test func endpointCacheControlWinsAndRateLimitFieldsReplace() {
        let response = LocalResponse(
            status: 200,
            contentType: "text/css",
            body: "a{}",
            headers: [.init("Cache-Control", "public, max-age=3600"), .init("RateLimit", "stale")]
        )
        let fields = OwnResponseHead.fields(
            for: response,
            requestID: "r",
            close: false,
            strictTransportSecurity: nil,
            rateLimitHeaders: [(name: "RateLimit", value: "\"p\";r=4;t=1")]
        )
        #expect(fields["Cache-Control"] == ["public, max-age=3600"])
        #expect(fields["RateLimit"] == ["\"p\";r=4;t=1"])
        #expect(fields["Connection"].isEmpty)
        #expect(fields["Strict-Transport-Security"].isEmpty)
    }

    @Test func rawTextIsAnHTTP11HeadWithReasonPhrase() {
        var fields = HTTPHeaders()
        fields.add(name: "Content-Length", value: "0")
        #expect(
            OwnResponseHead.text(status: 408, fields: fields)
                == "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n"
        )
    }
}
