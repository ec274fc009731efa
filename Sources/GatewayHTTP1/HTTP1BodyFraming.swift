/// How a message's body is delimited on the wire. A value; any thread.
package enum HTTP1BodyFraming: Sendable, Hashable {
    /// No body (no length and no chunked coding on a request, or `Content-Length: 0`).
    case none
    case contentLength(Int64)
    case chunked
    /// A response body that ends when the upstream closes the connection.
    case untilClose
}
