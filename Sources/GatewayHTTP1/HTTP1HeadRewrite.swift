package import NIOCore

/// Writes a parsed request head towards the upstream as byte ranges of the client's head with
/// the gateway's edits: HTTP/1.1, the request target optionally replaced, hop-by-hop fields
/// and those named in `Connection` removed, fields dropped by name or name prefix, and new
/// field lines appended. Untouched fields are copied verbatim, never turned into Strings.
/// A value; any thread.
package struct HTTP1HeadRewrite: Sendable {
    /// Replaces the client's request target (e.g. the normalised path and the query).
    package var target: String?
    /// Lowercase names dropped besides the hop-by-hop ones.
    package var droppedNames: [String]
    /// Lowercase name prefixes dropped (e.g. `x-dbaudit-`).
    package var droppedPrefixes: [String]
    /// Lines appended after the kept fields, in order. A value's control characters are
    /// written as spaces, so no value can end the line early; names must be tokens.
    package var appended: [(name: String, value: String)]

    /// RFC 9110 §7.6.1's connection-specific fields, plus the proxy credentials.
    static let hopByHop = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authorization", "proxy-authenticate",
    ].map { Array($0.utf8) }

    package init(
        target: String? = nil,
        droppedNames: [String] = [],
        droppedPrefixes: [String] = [],
        appended: [(name: String, value: String)] = []
    ) {
        self.target = target
        self.droppedNames = droppedNames
        self.droppedPrefixes = droppedPrefixes
        self.appended = appended
    }

    /// Appends the rewritten head, request line to the empty line, to `buffer`.
    package func write(_ head: HTTP1RequestHead, into buffer: inout ByteBuffer) {
        let names = Self.hopByHop + self.droppedNames.map { Array($0.utf8) }
        let prefixes = self.droppedPrefixes.map { Array($0.utf8) }
        head.bytes.withUnsafeReadableBytes { bytes in
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[head.methodRange]))
            buffer.writeInteger(HTTP1Syntax.space)
            if let target = self.target {
                buffer.writeString(target)
            } else {
                buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[head.target]))
            }
            buffer.writeStaticString(" HTTP/1.1\r\n")
            for field in head.fields {
                if Self.matches(bytes, field.name, names: names, prefixes: prefixes)
                    || head.connection.nominated.contains(where: { Self.sameName(bytes, field.name, bytes, $0) })
                {
                    continue
                }
                buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[field.line]))
            }
        }
        for (name, value) in self.appended {
            buffer.writeString(name)
            buffer.writeStaticString(": ")
            for byte in value.utf8 {
                buffer.writeInteger(byte < 0x20 || byte == 0x7F ? HTTP1Syntax.space : byte)
            }
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("\r\n")
    }

    private static func matches(
        _ bytes: UnsafeRawBufferPointer,
        _ name: Range<Int>,
        names: [[UInt8]],
        prefixes: [[UInt8]]
    ) -> Bool {
        for candidate in names where candidate.count == name.count {
            if HTTP1Syntax.hasPrefixIgnoringCase(bytes, name, candidate) { return true }
        }
        for prefix in prefixes where HTTP1Syntax.hasPrefixIgnoringCase(bytes, name, prefix) {
            return true
        }
        return false
    }

    private static func sameName(
        _ left: UnsafeRawBufferPointer,
        _ leftRange: Range<Int>,
        _ right: UnsafeRawBufferPointer,
        _ rightRange: Range<Int>
    ) -> Bool {
        guard leftRange.count == rightRange.count else { return false }
        for offset in 0..<leftRange.count
        where HTTP1Syntax.lowercased(left[leftRange.lowerBound + offset])
            != HTTP1Syntax.lowercased(right[rightRange.lowerBound + offset])
        {
            return false
        }
        return true
    }
}
