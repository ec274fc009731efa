package import NIOCore

/// Writes a parsed request head towards the upstream as byte ranges of the client's head with
/// the gateway's edits: HTTP/1.1, the request target optionally replaced, hop-by-hop fields
/// and those named in `Connection` removed, fields dropped by name or name prefix, and new
/// field lines appended. Untouched fields are copied verbatim, never turned into Strings.
/// A value; any thread.
package struct HTTP1HeadRewrite: Sendable {
    /// Replaces the client's request target (e.g. the normalised path and the query).
    package var target: String?
    /// Names and name prefixes dropped besides the hop-by-hop ones.
    package var dropped: HTTP1FieldNames
    /// Lines appended after the kept fields, in order. A value's control characters are
    /// written as spaces, so no value can end the line early; names must be tokens.
    package var appended: [(name: String, value: String)]

    /// RFC 9110 §7.6.1's connection-specific fields, plus the proxy credentials.
    static let hopByHop = HTTP1FieldNames(names: [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authorization", "proxy-authenticate",
    ])

    package init(
        target: String? = nil,
        dropped: HTTP1FieldNames,
        appended: [(name: String, value: String)] = []
    ) {
        self.target = target
        self.dropped = dropped
        self.appended = appended
    }

    /// With the names and prefixes dropped given as text (built for this rewrite only).
    package init(
        target: String? = nil,
        droppedNames: [String] = [],
        droppedPrefixes: [String] = [],
        appended: [(name: String, value: String)] = []
    ) {
        self.init(
            target: target,
            dropped: HTTP1FieldNames(names: droppedNames, prefixes: droppedPrefixes),
            appended: appended
        )
    }

    /// Appends the rewritten head, request line to the empty line, to `buffer`.
    package func write(_ head: HTTP1RequestHead, into buffer: inout ByteBuffer) {
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
                if Self.hopByHop.contains(bytes, field.name) || self.dropped.contains(bytes, field.name)
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
