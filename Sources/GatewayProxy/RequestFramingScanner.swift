/// Follows the framing of the request byte stream just far enough to bound what the HTTP
/// parser consumes without producing anything: a chunk-size line (size digits plus chunk
/// extensions) and a trailer section. llhttp skips chunk extensions without buffering
/// them, so memory never grew, but a client could stream them for ever (200 MiB was
/// accepted) with no body byte reaching the body timer or the size limit.
///
/// It reads request heads only for `Content-Length`, `Transfer-Encoding`, `Upgrade` and
/// `Connection`, skips fixed-length bodies in one step, and walks chunked bodies. Anything
/// it does not understand (a malformed head, a real upgrade, a size it cannot parse) stops
/// it: the request it is in passes unbounded, since malformed framing is the strict
/// parser's to refuse and the scanner never refuses what the parser would accept, and
/// `stopFollowing` tells the guard to end the connection with that request, because the
/// bytes after it can no longer be bounded.
///
/// A value type owned by one `RequestFramingGuard`, touched only on its channel's event loop.
struct RequestFramingScanner {
    enum Verdict: Equatable {
        case accept
        /// A chunk-size line or trailer section crossed its bound; the offending byte is at
        /// this offset of the scanned bytes.
        case tooLong(offset: Int)
        /// The framing can no longer be followed from this offset on: the bytes before it
        /// end (or are part of) the request being read, and nothing after that request may
        /// be served on this connection.
        case stopFollowing(offset: Int)
    }

    private enum State {
        case head
        case fixedBody(remaining: UInt64)
        case chunkLine(length: Int, size: UInt64, inDigits: Bool, sawDigit: Bool)
        case chunkData(remaining: UInt64)
        case chunkDataEnd(sawCR: Bool)
        case trailers(total: Int, lineLength: Int)
        case passThrough
    }

    /// Longest chunk-size line (digits, extensions, CR) accepted.
    let maxChunkLineBytes: Int
    /// Longest trailer section accepted, in raw bytes.
    let maxTrailerBytes: Int

    private var state: State = .head
    // The request head being read: only the lines that decide framing are kept.
    private var line: [UInt8] = []
    private var lineTruncated = false
    private var sawRequestLine = false
    private var contentLength: UInt64?
    private var lastTransferCoding: [UInt8]?
    private var headIsUnusual = false
    private var sawUpgrade = false
    private var connectionMayUpgrade = false

    private static let maxKeptLine = 512

    init(maxChunkLineBytes: Int, maxTrailerBytes: Int) {
        self.maxChunkLineBytes = maxChunkLineBytes
        self.maxTrailerBytes = maxTrailerBytes
    }

    var isPassingThrough: Bool {
        if case .passThrough = self.state { return true }
        return false
    }

    mutating func scan<Bytes: RandomAccessCollection>(_ bytes: Bytes) -> Verdict
    where Bytes.Element == UInt8, Bytes.Index == Int {
        guard !self.isPassingThrough else { return .accept }
        var index = bytes.startIndex
        while index < bytes.endIndex {
            switch self.state {
            case .passThrough:
                return .stopFollowing(offset: index - bytes.startIndex)

            case .fixedBody(let remaining):
                let available = UInt64(bytes.endIndex - index)
                if remaining > available {
                    self.state = .fixedBody(remaining: remaining - available)
                    return .accept
                }
                index += Int(remaining)
                self.startHead()

            case .chunkData(let remaining):
                let available = UInt64(bytes.endIndex - index)
                if remaining > available {
                    self.state = .chunkData(remaining: remaining - available)
                    return .accept
                }
                index += Int(remaining)
                self.state = .chunkDataEnd(sawCR: false)

            case .chunkDataEnd(let sawCR):
                let byte = bytes[index]
                index += 1
                if byte == UInt8(ascii: "\r"), !sawCR {
                    self.state = .chunkDataEnd(sawCR: true)
                } else if byte == UInt8(ascii: "\n") {
                    self.state = .chunkLine(length: 0, size: 0, inDigits: true, sawDigit: false)
                } else {
                    self.state = .passThrough
                }

            case .chunkLine(var length, var size, var inDigits, var sawDigit):
                var ended = false
                while index < bytes.endIndex {
                    let byte = bytes[index]
                    index += 1
                    if byte == UInt8(ascii: "\n") {
                        ended = true
                        break
                    }
                    length += 1
                    if length > self.maxChunkLineBytes {
                        return .tooLong(offset: index - 1 - bytes.startIndex)
                    }
                    if inDigits, let digit = Self.hexValue(byte) {
                        guard size <= (UInt64.max >> 4) else {
                            self.state = .passThrough
                            return .stopFollowing(offset: index - bytes.startIndex)
                        }
                        size = size << 4 | UInt64(digit)
                        sawDigit = true
                    } else {
                        inDigits = false
                    }
                }
                guard ended else {
                    self.state = .chunkLine(length: length, size: size, inDigits: inDigits, sawDigit: sawDigit)
                    return .accept
                }
                if !sawDigit {
                    self.state = .passThrough
                } else if size == 0 {
                    self.state = .trailers(total: 0, lineLength: 0)
                } else {
                    self.state = .chunkData(remaining: size)
                }

            case .trailers(var total, var lineLength):
                let byte = bytes[index]
                index += 1
                total += 1
                if total > self.maxTrailerBytes {
                    return .tooLong(offset: index - 1 - bytes.startIndex)
                }
                if byte == UInt8(ascii: "\n") {
                    if lineLength == 0 {
                        self.startHead()
                        continue
                    }
                    lineLength = 0
                } else if byte != UInt8(ascii: "\r") {
                    lineLength += 1
                }
                self.state = .trailers(total: total, lineLength: lineLength)

            case .head:
                let byte = bytes[index]
                index += 1
                if byte == UInt8(ascii: "\n") {
                    self.endOfHeadLine()
                } else if byte == 0x20 || byte == 0x09, let last = self.line.last, last == 0x20 || last == 0x09 {
                    // A run of whitespace means what one byte of it means (OWS around a
                    // value, a list separator), so padding cannot push a value out of the
                    // kept line.
                    continue
                } else if self.line.count < Self.maxKeptLine {
                    self.line.append(byte)
                } else {
                    self.lineTruncated = true
                }
            }
        }
        if case .passThrough = self.state { return .stopFollowing(offset: index - bytes.startIndex) }
        return .accept
    }

    private mutating func startHead() {
        self.state = .head
        self.line.removeAll(keepingCapacity: true)
        self.lineTruncated = false
        self.sawRequestLine = false
        self.contentLength = nil
        self.lastTransferCoding = nil
        self.headIsUnusual = false
        self.sawUpgrade = false
        self.connectionMayUpgrade = false
    }

    private mutating func endOfHeadLine() {
        if self.line.last == UInt8(ascii: "\r") { self.line.removeLast() }
        defer {
            self.line.removeAll(keepingCapacity: true)
            self.lineTruncated = false
        }
        guard self.sawRequestLine else {
            // Empty lines before a request line are skipped, as by the parser.
            guard !self.line.isEmpty else { return }
            self.sawRequestLine = true
            if Self.startsWith(self.line, "CONNECT ") { self.headIsUnusual = true }
            return
        }
        guard !self.line.isEmpty else {
            self.endOfHead()
            return
        }
        guard let colon = self.line.firstIndex(of: UInt8(ascii: ":")) else { return }
        let name = self.line[..<colon]
        var value = self.line[(colon + 1)...]
        while let first = value.first, first == 0x20 || first == 0x09 { value = value.dropFirst() }
        while let last = value.last, last == 0x20 || last == 0x09 { value = value.dropLast() }
        if Self.equalsIgnoringCase(name, "content-length") {
            guard !self.lineTruncated, !value.isEmpty, value.count <= 18, value.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                let length = UInt64(String(decoding: value, as: UTF8.self)),
                self.contentLength == nil || self.contentLength == length
            else {
                self.headIsUnusual = true
                return
            }
            self.contentLength = length
        } else if Self.equalsIgnoringCase(name, "transfer-encoding") {
            let last = value.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false).last ?? value[...]
            var coding = last[...]
            while let first = coding.first, first == 0x20 || first == 0x09 { coding = coding.dropFirst() }
            while let end = coding.last, end == 0x20 || end == 0x09 { coding = coding.dropLast() }
            self.lastTransferCoding = self.lineTruncated ? [] : Array(coding)
        } else if Self.equalsIgnoringCase(name, "upgrade") {
            self.sawUpgrade = true
        } else if Self.equalsIgnoringCase(name, "connection") {
            // Looser than the parser's token match on purpose: a false "maybe" only ends
            // the connection early, a missed upgrade would scan bytes the parser never reads.
            if self.lineTruncated || Self.containsIgnoringCase(value, "upgrade") { self.connectionMayUpgrade = true }
        }
    }

    private mutating func endOfHead() {
        // The parser upgrades only when both are present; an `Upgrade` alone is parsed (and
        // forwarded without it) as an ordinary request.
        if self.headIsUnusual || (self.sawUpgrade && self.connectionMayUpgrade) {
            self.state = .passThrough
            return
        }
        if let coding = self.lastTransferCoding {
            guard self.contentLength == nil, Self.equalsIgnoringCase(coding[...], "chunked") else {
                self.state = .passThrough
                return
            }
            self.state = .chunkLine(length: 0, size: 0, inDigits: true, sawDigit: false)
            return
        }
        if let length = self.contentLength, length > 0 {
            self.state = .fixedBody(remaining: length)
            return
        }
        self.startHead()
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - 48
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - 87
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - 55
        default: nil
        }
    }

    private static func startsWith(_ bytes: [UInt8], _ prefix: StaticString) -> Bool {
        let count = prefix.utf8CodeUnitCount
        guard bytes.count >= count else { return false }
        return prefix.withUTF8Buffer { Array($0) == Array(bytes[0..<count]) }
    }

    private static func containsIgnoringCase(_ bytes: ArraySlice<UInt8>, _ lowercase: StaticString) -> Bool {
        lowercase.withUTF8Buffer { expected in
            guard bytes.count >= expected.count else { return false }
            var start = bytes.startIndex
            while start + expected.count <= bytes.endIndex {
                if zip(bytes[start...], expected).allSatisfy({ ($0 | 0x20) == $1 || $0 == $1 }) { return true }
                start += 1
            }
            return false
        }
    }

    private static func equalsIgnoringCase(_ bytes: ArraySlice<UInt8>, _ lowercase: StaticString) -> Bool {
        lowercase.withUTF8Buffer { expected in
            guard bytes.count == expected.count else { return false }
            return zip(bytes, expected).allSatisfy { ($0 | 0x20) == $1 || $0 == $1 }
        }
    }
}
