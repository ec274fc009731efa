package import NIOCore

/// What `HTTP1RequestParser.next()` found in the bytes fed so far. A value; any thread.
package enum HTTP1RequestEvent: Sendable {
    case head(HTTP1RequestHead)
    /// Body bytes: a Content-Length body as it arrives, or the data of chunks (decoded).
    case body(ByteBuffer)
    /// The message ended; trailers only for a chunked body that had trailer fields.
    case end(HTTP1Trailers?)
    /// The input broke a rule; the parser reads nothing more.
    case error(HTTP1ParseError)
}
