/// What the parser had read of a request it refused, once its request line was complete: the
/// method, the target and the client's `X-Request-Id` if that field came before the broken
/// rule. Enough for the gateway to answer the refusal as the addressed endpoint answers its
/// errors (a browser route's HTML page) and under the client's own request id. A value; any
/// thread.
package struct HTTP1RefusedRequest: Sendable, Hashable {
    package var method: HTTP1Method
    package var target: String
    /// The first `X-Request-Id` value, when exactly one was read.
    package var requestID: String?

    package init(method: HTTP1Method, target: String, requestID: String? = nil) {
        self.method = method
        self.target = target
        self.requestID = requestID
    }
}
