package import NIOCore

/// Reads one upstream response head from the start of a buffer that fills as bytes arrive,
/// strictly (CRLF lines, token names, no folding, no control characters, one Content-Length,
/// not both framings) and within `maxHeadBytes`, and decides the body's framing from the
/// status and the request's method (RFC 9112 §6.3). Remembers how far it looked, so a head
/// arriving in small pieces is scanned once. A value owned by one upstream connection, on its
/// event loop.
package struct HTTP1ResponseHeadParser {
    package let limits: HTTP1ParserLimits
    private var searchFrom = 0

    package init(limits: HTTP1ParserLimits) {
        self.limits = limits
    }

    /// The head at the start of `buffer`, consumed from it; nil when more bytes are needed.
    package mutating func parse(
        _ buffer: inout ByteBuffer,
        requestMethod: HTTP1Method
    ) throws(HTTP1ParseError) -> HTTP1ResponseHead? {
        let copy = buffer
        let length = try copy.withUnsafeReadableBytes { bytes throws(HTTP1ParseError) -> Int? in
            try self.findEnd(bytes)
        }
        guard let length else { return nil }
        self.searchFrom = 0
        let head = buffer.readSlice(length: length)!
        let maxFields = self.limits.maxHeaderCount
        return try head.withUnsafeReadableBytes { bytes throws(HTTP1ParseError) in
            try Self.head(bytes, head, requestMethod: requestMethod, maxFields: maxFields)
        }
    }

    /// The length of the head (through its empty line), checking line endings on the way;
    /// only the first `maxHeadBytes` bytes are looked at.
    private mutating func findEnd(_ bytes: UnsafeRawBufferPointer) throws(HTTP1ParseError) -> Int? {
        let end = min(bytes.count, self.limits.maxHeadBytes)
        var index = self.searchFrom
        while index < end {
            let byte = bytes[index]
            if byte == HTTP1Syntax.lf {
                guard index > 0, bytes[index - 1] == HTTP1Syntax.cr else { throw .bareLF }
                // An empty line (CRLF right after the previous LF) ends the head.
                if index >= 3, bytes[index - 2] == HTTP1Syntax.lf { return index + 1 }
            } else if byte == HTTP1Syntax.cr, index + 1 < end, bytes[index + 1] != HTTP1Syntax.lf {
                throw .bareCR
            }
            index += 1
        }
        guard bytes.count < self.limits.maxHeadBytes else { throw .headTooLarge }
        self.searchFrom = end > 0 && bytes[end - 1] == HTTP1Syntax.cr ? end - 1 : end
        return nil
    }

    private static func head(
        _ bytes: UnsafeRawBufferPointer,
        _ buffer: ByteBuffer,
        requestMethod: HTTP1Method,
        maxFields: Int
    ) throws(HTTP1ParseError) -> HTTP1ResponseHead {
        var lineEnd = 0
        while bytes[lineEnd] != HTTP1Syntax.lf { lineEnd += 1 }
        let (minor, status, reason) = try Self.statusLine(bytes, 0..<(lineEnd - 1))
        var fields: [HTTP1Field] = []
        var connection = HTTP1ConnectionOptions()
        var contentLength: Int64?
        var lastCodingIsChunked: Bool?
        var start = lineEnd + 1
        while bytes[start] != HTTP1Syntax.cr {
            var end = start
            while bytes[end] != HTTP1Syntax.lf { end += 1 }
            let field = try HTTP1HeadBuilder.parseField(bytes, start..<(end + 1))
            fields.append(field)
            guard fields.count <= maxFields else { throw .tooManyHeaderFields }
            if HTTP1Syntax.equalsIgnoringCase(bytes, field.name, "content-length") {
                guard contentLength == nil else { throw .duplicateContentLength }
                guard let length = HTTP1Syntax.decimalLength(bytes, field.value) else { throw .invalidContentLength }
                contentLength = length
            } else if HTTP1Syntax.equalsIgnoringCase(bytes, field.name, "transfer-encoding") {
                var last = field.value.lowerBound
                for index in field.value where bytes[index] == UInt8(ascii: ",") { last = index + 1 }
                let coding = HTTP1Syntax.trimmed(bytes, last..<field.value.upperBound)
                lastCodingIsChunked = HTTP1Syntax.equalsIgnoringCase(bytes, coding, "chunked")
            } else if HTTP1Syntax.equalsIgnoringCase(bytes, field.name, "connection") {
                try connection.add(bytes, field.value)
            }
            start = end + 1
        }
        // Both framings is how responses are smuggled to the next hop: refused, whatever the
        // status (llhttp refuses it too).
        if lastCodingIsChunked != nil, contentLength != nil { throw .contentLengthWithTransferEncoding }
        let framing: HTTP1BodyFraming
        if requestMethod == .HEAD || (status >= 100 && status < 200) || status == 204 || status == 304 {
            framing = .none
        } else if let chunked = lastCodingIsChunked {
            framing = chunked ? .chunked : .untilClose
        } else if let contentLength {
            framing = contentLength == 0 ? .none : .contentLength(contentLength)
        } else {
            framing = .untilClose
        }
        return HTTP1ResponseHead(
            bytes: buffer,
            minorVersion: minor,
            status: status,
            reason: reason,
            fields: fields,
            framing: framing,
            connection: connection
        )
    }

    /// `HTTP/1.x SP 3DIGIT [SP reason]`; an empty reason may lack its space.
    private static func statusLine(
        _ bytes: UnsafeRawBufferPointer,
        _ line: Range<Int>
    ) throws(HTTP1ParseError) -> (Int, Int, Range<Int>) {
        guard line.count >= 12 else { throw .invalidStatusLine }
        let base = line.lowerBound
        for (offset, byte) in "HTTP/1.".utf8.enumerated() where bytes[base + offset] != byte {
            throw .invalidStatusLine
        }
        let minor = bytes[base + 7]
        guard minor == UInt8(ascii: "0") || minor == UInt8(ascii: "1") else { throw .unsupportedVersion }
        guard bytes[base + 8] == HTTP1Syntax.space else { throw .invalidStatusLine }
        var status = 0
        for index in (base + 9)..<(base + 12) {
            let digit = bytes[index]
            guard digit >= 48, digit <= 57 else { throw .invalidStatusLine }
            status = status * 10 + Int(digit - 48)
        }
        guard status >= 100 else { throw .invalidStatusLine }
        var reason = line.upperBound..<line.upperBound
        if line.count > 12 {
            guard bytes[base + 12] == HTTP1Syntax.space else { throw .invalidStatusLine }
            reason = (base + 13)..<line.upperBound
            for index in reason where !HTTP1Syntax.isFieldValueByte(bytes[index]) {
                throw .invalidFieldValue
            }
        }
        return (Int(minor - 48), status, reason)
    }
}
