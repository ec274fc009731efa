/// Seeded generator of request streams for the differential test: valid requests mutated the
/// ways smuggling attacks do (CR, LF, NUL, SP, HTAB spliced in; framing headers duplicated
/// and case-varied; chunk sizes with overflow, leading zeros, extensions), pipelined, and cut
/// at random points. Deterministic for one seed. A value; the test's thread.
struct RequestMutator {
    private var state: UInt64

    init(seed: UInt64) {
        self.state = seed
    }

    /// SplitMix64.
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func below(_ bound: Int) -> Int {
        Int(self.next() % UInt64(bound))
    }

    mutating func pick<T>(_ items: [T]) -> T {
        items[self.below(items.count)]
    }

    /// Usually (7 times in 8) one of the first `valid` items, which are well-formed.
    mutating func mostly<T>(_ items: [T], valid: Int) -> T {
        self.below(8) > 0 ? items[self.below(valid)] : self.pick(items)
    }

    static let methods = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "M-SEARCH", "get", "CONNECT", "PRI",
    ]
    static let targets = [
        "/", "/v1/databases?x=1", "/a%2Fb", "/a b", "*", "http://h/x", "/a#f", "/q?\"<>{}|\\^`", "/~!$&'()*+,;=:@",
    ]
    static let versions = [
        "HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "HTTP/2.0", "HTTP/0.9", "http/1.1", "HTTP/1.1 ", "HTTP/11",
    ]
    static let framingNames = [
        "Content-Length", "content-length", "CONTENT-LENGTH", "Content-Length ", " Content-Length", "Content_Length",
        "Transfer-Encoding", "transfer-encoding", "Transfer-encoding", "Transfer-Encoding ",
    ]
    static let lengths = [
        "5", " 5", "5 ", "05", "+5", "-5", "5,5", "5, 5", "", "0x5", "99999999999999999999", "4", "6", "5\t",
    ]
    static let codings = [
        "chunked", "Chunked", "CHUNKED", " chunked", "chunked ", "gzip, chunked", "chunked, gzip", "identity",
        "chunked,", ", chunked", "xchunked", "chunked\u{0B}",
    ]
    static let chunkSizes = [
        "5", "05", "0005", "5;a", "5;a=b", "5;a=\"b\"", "5;a=\"b\\\"c\"", "5 ;a", "5; a", "5\t", "0x5",
        "fffffffffffffffff",
        "7fffffffffffffff", "8000000000000000", "5;", "5;a=", "5;a=\"", "5;a=\"\u{0}\"", "+5", "-5", "5a", "A",
    ]
    static let splices: [UInt8] = [13, 10, 0, 32, 9, 58, 44, 59, 34, 0x7F, 0x80, 0xFF, 11, 12, 48, 92]
    static let connections = [
        "close", "keep-alive", "Upgrade", "close, x-a", "keep-alive, close", "clos", "x y", "upgrade, keep-alive",
    ]
    static let hosts = ["h", "h:80", "[::1]:8443", "a b", "u@h", "", "h:", "h:123456", "1.2.3.4"]

    /// One request: a head with a random framing and a body that may or may not match it.
    mutating func request() -> [UInt8] {
        var head =
            "\(self.mostly(Self.methods, valid: 8)) \(self.mostly(Self.targets, valid: 3)) \(self.mostly(Self.versions, valid: 2))\r\n"
        if self.below(10) > 0 { head += "Host: \(self.mostly(Self.hosts, valid: 3))\r\n" }
        if self.below(12) == 0 { head += "Host: \(self.pick(Self.hosts))\r\n" }
        var body = ""
        switch self.below(4) {
        case 0:
            break
        case 1:
            head += "\(self.mostly(Self.framingNames, valid: 3)): \(self.mostly(Self.lengths, valid: 4))\r\n"
            body = "hello"
        case 2:
            head += "Transfer-Encoding: \(self.mostly(Self.codings, valid: 5))\r\n"
            body = self.chunkedBody()
        default:
            for _ in 0..<(1 + self.below(3)) {
                let name = self.pick(Self.framingNames)
                head +=
                    "\(name): \(name.lowercased().contains("transfer") ? self.pick(Self.codings) : self.pick(Self.lengths))\r\n"
            }
            body = self.below(2) == 0 ? "hello" : self.chunkedBody()
        }
        if self.below(4) == 0 { head += "Connection: \(self.pick(Self.connections))\r\n" }
        if self.below(6) == 0 { head += "Upgrade: websocket\r\n" }
        if self.below(3) == 0 {
            head +=
                "X-Pad:\(String(repeating: " ", count: self.below(4)))v\(String(repeating: "\t", count: self.below(3)))\r\n"
        }
        return Array((head + "\r\n" + body).utf8)
    }

    private mutating func chunkedBody() -> String {
        var body = ""
        for _ in 0..<self.below(3) {
            body += "\(self.mostly(Self.chunkSizes, valid: 6))\r\nhello\r\n"
        }
        body += self.mostly(
            [
                "0\r\n\r\n", "0\r\nX-T: 1\r\n\r\n", "000\r\n\r\n", "0;e=1\r\n\r\n", "0\r\n", "0\r\nX-T : 1\r\n\r\n",
                "0\r\nConnection: close\r\n\r\n", "0\r\nTransfer-Encoding: chunked\r\n\r\n", "0\r\nUpgrade: x\r\n\r\n",
            ],
            valid: 4
        )
        return body
    }

    /// A stream of one to three requests with up to three bytes spliced, removed or replaced.
    mutating func stream() -> [UInt8] {
        var bytes: [UInt8] = []
        for _ in 0..<(1 + self.below(3)) { bytes += self.request() }
        for _ in 0..<max(0, self.below(6) - 2) {
            let position = self.below(bytes.count + 1)
            switch self.below(3) {
            case 0: bytes.insert(self.pick(Self.splices), at: position)
            case 1 where position < bytes.count: bytes.remove(at: position)
            default: if position < bytes.count { bytes[position] = self.pick(Self.splices) }
            }
        }
        return bytes
    }

    /// `bytes` cut at up to four random points.
    mutating func pieces(_ bytes: [UInt8]) -> [[UInt8]] {
        guard bytes.count > 1 else { return [bytes] }
        let cuts = Set((0..<self.below(5)).map { _ in 1 + self.below(bytes.count - 1) }).sorted()
        var result: [[UInt8]] = []
        var start = 0
        for cut in cuts {
            result.append(Array(bytes[start..<cut]))
            start = cut
        }
        result.append(Array(bytes[start...]))
        return result
    }
}
