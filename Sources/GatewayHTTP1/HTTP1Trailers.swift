package import NIOCore

/// The trailer section of a chunked message: its bytes (field lines and the final empty line)
/// and each field's offsets into them. A value; any thread.
package struct HTTP1Trailers: Sendable, Equatable {
    package let bytes: ByteBuffer
    package let fields: [HTTP1Field]

    package init(bytes: ByteBuffer, fields: [HTTP1Field]) {
        self.bytes = bytes
        self.fields = fields
    }

    package func string(_ range: Range<Int>) -> String {
        self.bytes.getString(at: self.bytes.readerIndex + range.lowerBound, length: range.count) ?? ""
    }
}
