package import NIOCore

/// The trailer section of a chunked message: its bytes (field lines and the final empty line)
/// and each field's offsets into them. A value; any thread.
package struct HTTP1Trailers: Sendable {
    package let bytes: ByteBuffer
    package let fields: [HTTP1Field]

    package func string(_ range: Range<Int>) -> String {
        self.bytes.getString(at: self.bytes.readerIndex + range.lowerBound, length: range.count) ?? ""
    }
}
