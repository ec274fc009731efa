package import NIOCore

/// What `HTTP1ResponseParser.next()` found in the bytes fed so far. A value; any thread.
package enum HTTP1ResponseEvent: Sendable {
    /// A final head (interim 1xx heads are read and dropped; 101 is returned as it is).
    case head(HTTP1ResponseHead)
    /// Body bytes: slices of the input (a Content-Length or until-close body as it arrives,
    /// the data of chunks, de-chunked).
    case body(ByteBuffer)
    /// The response ended; trailers only for a chunked body that had trailer fields.
    case end(HTTP1Trailers?)
    /// The input broke a rule; the parser reads nothing more.
    case error(HTTP1ParseError)
}
