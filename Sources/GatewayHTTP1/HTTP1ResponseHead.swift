package import NIOCore

/// A parsed upstream response head: its bytes as received (status line to the empty line),
/// each field's offsets, and what the proxy needs to frame and forward it: status, body
/// framing, keep-alive. The head is forwarded as its own bytes plus the gateway's lines.
/// A value; any thread.
package struct HTTP1ResponseHead: Sendable {
    package let bytes: ByteBuffer
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    package let minorVersion: Int
    package let status: Int
    package let reason: Range<Int>
    package let fields: [HTTP1Field]
    /// How the body after this head ends (none for HEAD requests, 1xx, 204 and 304).
    package let framing: HTTP1BodyFraming
    package let connection: HTTP1ConnectionOptions

    /// 1xx other than 101: another head follows for the same request.
    package var isInformational: Bool {
        self.status >= 100 && self.status < 200 && self.status != 101
    }

    /// Whether the upstream connection can carry another request after this response.
    package var keepAlive: Bool {
        if self.connection.close || self.framing == .untilClose || self.status == 101 { return false }
        return self.minorVersion >= 1 || self.connection.keepAlive
    }

    package func string(_ range: Range<Int>) -> String {
        self.bytes.getString(at: self.bytes.readerIndex + range.lowerBound, length: range.count) ?? ""
    }

    /// The name of `field` equals `lowercase` ignoring ASCII case.
    package func nameEquals(_ field: HTTP1Field, _ lowercase: StaticString) -> Bool {
        self.bytes.withUnsafeReadableBytes { HTTP1Syntax.equalsIgnoringCase($0, field.name, lowercase) }
    }

    /// The value of `field` equals `lowercase` ignoring ASCII case.
    package func valueEquals(_ field: HTTP1Field, _ lowercase: StaticString) -> Bool {
        self.bytes.withUnsafeReadableBytes { HTTP1Syntax.equalsIgnoringCase($0, field.value, lowercase) }
    }
}
