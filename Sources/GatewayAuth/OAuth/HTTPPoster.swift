package import NIOCore

/// One outbound form POST (RFC 7662 introspection): where, what, and the bounds on the
/// exchange. Immutable value; any thread.
package struct HTTPPostRequest: Sendable {
    package var url: String
    /// Added after `Host`, `Content-Length`, `Content-Type` (form) and `Accept` (JSON).
    package var headers: [(name: String, value: String)]
    package var body: [UInt8]
    /// For the whole exchange: connect, TLS handshake, request and complete answer.
    package var timeout: TimeAmount
    /// A longer answer fails the exchange.
    package var maximumBytes: Int
    /// Trust anchors for an https URL; nil: the system trust store.
    package var caFile: String?

    package init(
        url: String,
        headers: [(name: String, value: String)],
        body: [UInt8],
        timeout: TimeAmount,
        maximumBytes: Int,
        caFile: String?
    ) {
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.maximumBytes = maximumBytes
        self.caFile = caFile
    }
}

/// Performs one outbound POST without blocking: the connection runs on `eventLoop` and the
/// future completes there. Implemented by the server over NIOPosix and GatewayTLS (this
/// module stays free of sockets), faked in tests.
package typealias HTTPPoster =
    @Sendable (_ request: HTTPPostRequest, _ eventLoop: any EventLoop) -> EventLoopFuture<HTTPFetchResponse>
