import NIOCore

/// Collects one request head line by line while the parser reads it, checking every line as
/// it completes, and makes the `HTTP1RequestHead` at the empty line. Offsets are from the
/// start of the head. Owned by one `HTTP1RequestParser`, so by its connection's event loop.
struct HTTP1HeadBuilder {
    private(set) var sawRequestLine = false
    private var method: HTTP1Method = .GET
    private var methodRange: Range<Int> = 0..<0
    private var target: Range<Int> = 0..<0
    private var minorVersion = 1
    private(set) var fields: [HTTP1Field] = []
    private var connection = HTTP1ConnectionOptions()
    private var host = HTTP1FieldOccurrences()
    private var authorization = HTTP1FieldOccurrences()
    private var forwardedFor = HTTP1FieldOccurrences()
    private var requestID = HTTP1FieldOccurrences()
    private var expect = HTTP1FieldOccurrences()
    private var hasUpgrade = false
    private var contentLength: Int64?
    private var transferEncodings = 0
    private var chunked = false

    /// The request line and the request id read so far, once the request line was complete
    /// (offsets into `bytes`, the head's bytes from its first byte).
    func refused(_ bytes: UnsafeRawBufferPointer) -> HTTP1RefusedRequest? {
        guard self.sawRequestLine, !self.target.isEmpty, self.target.upperBound <= bytes.count else { return nil }
        func text(_ range: Range<Int>) -> String {
            String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        }
        var requestID: String?
        if self.requestID.count == 1, let index = self.requestID.first {
            requestID = text(self.fields[index].value)
        }
        return HTTP1RefusedRequest(method: self.method, target: text(self.target), requestID: requestID)
    }

    /// `method SP origin-form SP HTTP/1.x`; `line` excludes the CRLF.
    mutating func requestLine(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) throws(HTTP1ParseError) {
        self.sawRequestLine = true
        var index = line.lowerBound
        while index < line.upperBound, bytes[index] != HTTP1Syntax.space { index += 1 }
        let methodRange = line.lowerBound..<index
        guard !methodRange.isEmpty, index < line.upperBound else { throw .invalidRequestLine }
        for position in methodRange where !HTTP1Syntax.isToken(bytes[position]) {
            throw .invalidMethod
        }
        guard let method = HTTP1Method.parse(bytes, methodRange) else { throw .invalidMethod }
        if method == .CONNECT { throw .connectNotSupported }
        index += 1
        let targetStart = index
        while index < line.upperBound, bytes[index] != HTTP1Syntax.space { index += 1 }
        let target = targetStart..<index
        guard index < line.upperBound, !target.isEmpty else { throw .invalidRequestLine }
        guard bytes[targetStart] == UInt8(ascii: "/") else { throw .invalidTarget }
        for position in target where !HTTP1Syntax.isTargetByte(bytes[position]) {
            throw .invalidTarget
        }
        let version = (index + 1)..<line.upperBound
        self.minorVersion = try Self.version(bytes, version)
        self.method = method
        self.methodRange = methodRange
        self.target = target
    }

    /// `HTTP/1.0` or `HTTP/1.1`.
    private static func version(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) throws(HTTP1ParseError) -> Int {
        guard range.count == 8 else { throw .invalidRequestLine }
        for (offset, byte) in "HTTP/".utf8.enumerated() where bytes[range.lowerBound + offset] != byte {
            throw .invalidRequestLine
        }
        let major = bytes[range.lowerBound + 5]
        let dot = bytes[range.lowerBound + 6]
        let minor = bytes[range.lowerBound + 7]
        guard major >= 48, major <= 57, dot == UInt8(ascii: "."), minor >= 48, minor <= 57 else {
            throw .invalidRequestLine
        }
        guard major == UInt8(ascii: "1"), minor <= UInt8(ascii: "1") else { throw .unsupportedVersion }
        return Int(minor - 48)
    }

    /// One field line; `line` includes the CRLF.
    mutating func field(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) throws(HTTP1ParseError) {
        let field = try Self.parseField(bytes, line)
        let index = self.fields.count
        self.fields.append(field)
        let name = field.name
        // Only the names policy reads are compared; the first byte and the length pick few.
        switch name.count {
        case 4 where HTTP1Syntax.equalsIgnoringCase(bytes, name, "host"):
            if self.host.count > 0 { throw .duplicateHost }
            guard HTTP1Syntax.isValidHost(bytes, field.value) else { throw .invalidHost }
            self.host.add(index)
        case 14 where HTTP1Syntax.equalsIgnoringCase(bytes, name, "content-length"):
            guard self.contentLength == nil else { throw .duplicateContentLength }
            // Only spaces around the digits: llhttp refuses a tab after them.
            for index in field.name.upperBound + 1..<field.line.upperBound - 2
            where bytes[index] == HTTP1Syntax.tab {
                throw .invalidContentLength
            }
            guard let length = HTTP1Syntax.decimalLength(bytes, field.value) else { throw .invalidContentLength }
            self.contentLength = length
        case 17 where HTTP1Syntax.equalsIgnoringCase(bytes, name, "transfer-encoding"):
            self.transferEncodings += 1
            self.chunked = HTTP1Syntax.equalsIgnoringCase(bytes, field.value, "chunked")
            guard self.transferEncodings == 1, self.chunked else { throw .unsupportedTransferEncoding }
        case 10 where HTTP1Syntax.equalsIgnoringCase(bytes, name, "connection"):
            try self.connection.add(bytes, field.value)
        case 7 where HTTP1Syntax.equalsIgnoringCase(bytes, name, "upgrade"):
            self.hasUpgrade = true
        case 13 where HTTP1Syntax.equalsIgnoringCase(bytes, name, "authorization"):
            self.authorization.add(index)
        case 15 where HTTP1Syntax.equalsIgnoringCase(bytes, name, "x-forwarded-for"):
            self.forwardedFor.add(index)
        case 12 where HTTP1Syntax.equalsIgnoringCase(bytes, name, "x-request-id"):
            self.requestID.add(index)
        case 6 where HTTP1Syntax.equalsIgnoringCase(bytes, name, "expect"):
            self.expect.add(index)
        default:
            break
        }
    }

    /// `token ":" OWS value OWS CRLF`; `line` includes the CRLF.
    static func parseField(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) throws(HTTP1ParseError) -> HTTP1Field {
        let end = line.upperBound - 2
        var index = line.lowerBound
        if HTTP1Syntax.isWhitespace(bytes[index]) { throw .obsoleteLineFolding }
        while index < end, HTTP1Syntax.isToken(bytes[index]) { index += 1 }
        guard index > line.lowerBound, index < end, bytes[index] == HTTP1Syntax.colon else {
            throw .invalidFieldName
        }
        let name = line.lowerBound..<index
        let value = HTTP1Syntax.trimmed(bytes, (index + 1)..<end)
        for position in value where !HTTP1Syntax.isFieldValueByte(bytes[position]) {
            throw .invalidFieldValue
        }
        return HTTP1Field(name: name, value: value, line: line)
    }

    /// The rules that need the whole head: one Host on HTTP/1.1, one framing.
    func finish(_ bytes: ByteBuffer) throws(HTTP1ParseError) -> HTTP1RequestHead {
        if self.minorVersion >= 1, self.host.count == 0 { throw .missingHost }
        let framing: HTTP1BodyFraming
        if self.transferEncodings > 0 {
            guard self.contentLength == nil else { throw .contentLengthWithTransferEncoding }
            guard self.minorVersion >= 1 else { throw .unsupportedTransferEncoding }
            framing = .chunked
        } else if let length = self.contentLength, length > 0 {
            framing = .contentLength(length)
        } else {
            framing = .none
        }
        return HTTP1RequestHead(
            bytes: bytes,
            method: self.method,
            methodRange: self.methodRange,
            target: self.target,
            minorVersion: self.minorVersion,
            fields: self.fields,
            framing: framing,
            connection: self.connection,
            host: self.host,
            authorization: self.authorization,
            forwardedFor: self.forwardedFor,
            requestID: self.requestID,
            expect: self.expect,
            hasUpgrade: self.hasUpgrade
        )
    }
}
