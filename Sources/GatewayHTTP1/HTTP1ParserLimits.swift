/// The bounds an HTTP/1 parser enforces on what it buffers: nothing it holds grows past
/// these, whatever the peer sends. A value; any thread.
package struct HTTP1ParserLimits: Sendable, Hashable {
    /// Longest head, request line to the empty line, in raw bytes (empty lines before the
    /// request line count); head and trailers of one message together stay within it too.
    package var maxHeadBytes: Int
    /// Most header fields of one message, trailer fields included.
    package var maxHeaderCount: Int
    /// Longest chunk-size line (digits and extensions, without CRLF).
    package var maxChunkLineBytes: Int
    /// Longest trailer section, in raw bytes.
    package var maxTrailerBytes: Int

    package init(maxHeadBytes: Int, maxHeaderCount: Int = 256, maxChunkLineBytes: Int, maxTrailerBytes: Int) {
        self.maxHeadBytes = maxHeadBytes
        self.maxHeaderCount = maxHeaderCount
        self.maxChunkLineBytes = maxChunkLineBytes
        self.maxTrailerBytes = maxTrailerBytes
    }

    /// The bounds the gateway configures for `[server] max_header_bytes`.
    package init(maxHeaderBytes: Int) {
        self.init(
            maxHeadBytes: maxHeaderBytes,
            maxChunkLineBytes: maxHeaderBytes,
            maxTrailerBytes: maxHeaderBytes
        )
    }
}
