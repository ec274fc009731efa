import GatewayConfig
import Testing

extension ValueParsers.Outcome {
    var value: Value? {
        if case .success(let value) = self { return value }
        return nil
    }

    var failureMessage: String? {
        if case .failure(let message) = self { return message }
        return nil
    }
}

@Suite struct DurationParserTests {
    @Test(arguments: [
        ("1ms", Duration.milliseconds(1)),
        ("250ms", .milliseconds(250)),
        ("10s", .seconds(10)),
        ("5m", .seconds(300)),
        ("1h", .seconds(3600)),
        ("24h", .seconds(86_400)),
        ("1440m", .seconds(86_400)),
        ("86400s", .seconds(86_400)),
        ("86400000ms", .seconds(86_400)),
        ("007s", .seconds(7)),
    ])
    func parsesValidDurations(_ text: String, _ expected: Duration) {
        #expect(ValueParsers.duration(text).value == expected)
    }

    @Test(arguments: [
        "10",  // no unit
        "5 s",  // space
        " 5s",
        "5s ",
        "0s",  // not more than 0
        "0ms",
        "-5s",
        "+5s",
        "1.5s",
        "5S",
        "5sec",
        "5d",
        "5us",
        "s",
        "",
        "25h",  // more than 24h
        "1441m",
        "86401s",
        "86400001ms",
        "1000000000ms",  // ten digits
        "99999999999999999999h",  // would overflow Int64
        "\u{0661}s",  // ARABIC-INDIC DIGIT ONE is not an ASCII digit
    ])
    func rejectsInvalidDurations(_ text: String) {
        let outcome = ValueParsers.duration(text)
        #expect(outcome.value == nil, "\(text) was accepted")
        #expect(outcome.failureMessage?.contains("duration") == true)
    }
}

@Suite struct SizeParserTests {
    @Test(arguments: [
        ("0", Int64(0)),
        ("512", 512),
        ("512B", 512),
        ("64KiB", 65_536),
        ("10MiB", 10_485_760),
        ("1GiB", 1_073_741_824),
        ("1024GiB", 1_099_511_627_776),
        ("999999999999", 999_999_999_999),
    ])
    func parsesValidSizes(_ text: String, _ expected: Int64) {
        #expect(ValueParsers.size(text).value == expected)
    }

    @Test(arguments: [
        "10MB",
        "10KB",
        "10kib",
        "10 MiB",
        "10TiB",
        "MiB",
        "",
        "-1",
        "+1",
        "1.5MiB",
        "0x10",
        "99999999999GiB",  // overflows Int64
        "9999999999999",  // thirteen digits
    ])
    func rejectsInvalidSizes(_ text: String) {
        let outcome = ValueParsers.size(text)
        #expect(outcome.value == nil, "\(text) was accepted")
        #expect(outcome.failureMessage?.contains("KiB") == true)
    }
}

@Suite struct ListenAddressParserTests {
    @Test(arguments: [
        ("0.0.0.0:8080", ListenAddress(host: "0.0.0.0", port: 8080)),
        ("127.0.0.1:80", ListenAddress(host: "127.0.0.1", port: 80)),
        ("localhost:8080", ListenAddress(host: "localhost", port: 8080)),
        ("gw-1.example.com:443", ListenAddress(host: "gw-1.example.com", port: 443)),
        ("[::1]:8080", ListenAddress(host: "::1", port: 8080)),
        ("[::]:8443", ListenAddress(host: "::", port: 8443)),
        ("[fe80::1:2]:1", ListenAddress(host: "fe80::1:2", port: 1)),
        ("[::ffff:127.0.0.1]:9000", ListenAddress(host: "::ffff:127.0.0.1", port: 9000)),
        ("host:0", ListenAddress(host: "host", port: 0)),
        ("host:65535", ListenAddress(host: "host", port: 65535)),
    ])
    func parsesValidAddresses(_ text: String, _ expected: ListenAddress) {
        #expect(ValueParsers.listenAddress(text).value == expected)
    }

    @Test(arguments: [
        ("0.0.0.0", "port is required"),
        ("[::1]", "port is required"),
        ("host:65536", "invalid port"),
        ("host:99999", "invalid port"),
        ("host:123456", "invalid port"),
        ("host:", "invalid port"),
        ("host:-1", "invalid port"),
        ("host:8o", "invalid port"),
        (":8080", "invalid host"),
        ("::1:8080", "invalid host"),
        ("ho st:80", "invalid host"),
        ("host_name:80", "invalid host"),
        ("h\u{E9}st:80", "invalid host"),
        ("[::1:8080", "unclosed ["),
        ("[::1]8080", "expected :port"),
        ("[]:80", "invalid IPv6"),
        ("[zz::1]:80", "invalid IPv6"),
        ("[::1]:65536", "invalid port"),
        ("", "invalid host"),
    ])
    func rejectsInvalidAddresses(_ text: String, _ reason: String) {
        let outcome = ValueParsers.listenAddress(text)
        #expect(outcome.value == nil, "\(text) was accepted")
        let message = outcome.failureMessage ?? ""
        #expect(message.contains(reason), "\(message)")
        // The message quotes the offending text so an operator can find it.
        #expect(message.hasPrefix("\"\(text)\""), "\(message)")
    }

    @Test func descriptionRoundTrips() {
        for text in ["0.0.0.0:8080", "[::1]:8080", "localhost:1"] {
            #expect(ValueParsers.listenAddress(text).value?.description == text)
        }
    }
}

@Suite struct UpstreamURLParserTests {
    @Test(arguments: [
        ("http://127.0.0.1:9000", "127.0.0.1", 9000),
        ("http://127.0.0.1:9000/", "127.0.0.1", 9000),
        ("http://backend", "backend", 80),
        ("http://backend/", "backend", 80),
        ("http://backend.internal:8080", "backend.internal", 8080),
        ("http://[::1]:8080", "::1", 8080),
        ("http://[::1]", "::1", 80),
    ])
    func parsesValidURLs(_ text: String, _ host: String, _ port: Int) {
        let parsed = ValueParsers.upstreamURL(text).value
        #expect(parsed?.scheme == "http")
        #expect(parsed?.host == host)
        #expect(parsed?.port == port)
    }

    @Test(arguments: [
        ("https://backend", "backend", 443),
        ("https://backend.internal:8443/", "backend.internal", 8443),
        ("https://127.0.0.1:9443", "127.0.0.1", 9443),
    ])
    func parsesHTTPSURLs(_ text: String, _ host: String, _ port: Int) {
        let parsed = ValueParsers.upstreamURL(text).value
        #expect(parsed?.scheme == "https")
        #expect(parsed?.host == host)
        #expect(parsed?.port == port)
    }

    @Test(arguments: [
        ("ftp://backend", "http://"),
        ("https//backend", "http://"),
        ("https://user@backend", "credentials"),
        ("https://backend/api", "no path"),
        ("backend:80", "http://"),
        ("//backend", "http://"),
        ("http://user:secret@backend", "credentials"),
        ("http://user@backend:80", "credentials"),
        ("http://backend/api", "no path"),
        ("http://backend:80/api/", "no path"),
        ("http://backend//", "no path"),
        ("http://backend?x=1", "no path"),
        ("http://backend#frag", "no path"),
        ("http://", "invalid host"),
        ("http://:80", "invalid host"),
        ("http://back end", "invalid host"),
        ("http://backend:65536", "invalid port"),
        ("http://backend:", "invalid port"),
        ("http://[::1:80", "unclosed ["),
    ])
    func rejectsInvalidURLs(_ text: String, _ reason: String) {
        let outcome = ValueParsers.upstreamURL(text)
        #expect(outcome.value == nil, "\(text) was accepted")
        #expect(outcome.failureMessage?.contains(reason) == true, "\(outcome.failureMessage ?? "")")
    }
}

/// Strictness the parsers must keep.
@Suite struct ValueParserStrictnessTests {
    /// `Character.isHexDigit` is also true for fullwidth forms (U+FF10...U+FF19,
    /// U+FF21...U+FF26, U+FF41...U+FF46); such an "IPv6 address" must be refused here,
    /// not at bind/connect time.
    @Test func fullwidthHexDigitsInIPv6AreRejected() {
        #expect(ValueParsers.listenAddress("[\u{FF10}::1]:8080").value == nil)
        #expect(ValueParsers.upstreamURL("http://[\u{FF41}::1]:8080").value == nil)
    }

    /// Port 0 is "any port" for a listener, but it can never be connected to.
    @Test func upstreamPortZeroIsRejected() {
        #expect(ValueParsers.upstreamURL("http://127.0.0.1:0").value == nil)
    }
}
