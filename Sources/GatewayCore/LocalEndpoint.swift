package import NIOCore

/// One request to an endpoint the gateway answers itself (OAuth, the browser pages), as the
/// proxy hands it over once the head was parsed and the whole (bounded) body read. A value;
/// any thread, though endpoints only see it on the connection's event loop.
package struct LocalRequest: Sendable {
    package var method: String
    package var normalizedPath: String
    /// The raw query after `?` (not decoded), "" when there is none.
    package var query: String
    /// The request's header fields, in the order received.
    package var headers: [GatewayError.HeaderField]
    package var body: [UInt8]
    /// The client behind any trusted proxies.
    package var clientAddress: String
    /// The request came through a TLS listener (cookies get `Secure` and `__Host-`).
    package var isTLS: Bool
    package var requestID: String

    package init(
        method: String,
        normalizedPath: String,
        query: String,
        headers: [GatewayError.HeaderField],
        body: [UInt8],
        clientAddress: String,
        isTLS: Bool,
        requestID: String
    ) {
        self.method = method
        self.normalizedPath = normalizedPath
        self.query = query
        self.headers = headers
        self.body = body
        self.clientAddress = clientAddress
        self.isTLS = isTLS
        self.requestID = requestID
    }

    /// Every value of the header `name` (compared case-insensitively), in order.
    package func values(of name: String) -> [String] {
        self.headers.compactMap { $0.name.caseInsensitiveEquals(name) ? $0.value : nil }
    }
}

/// What a local endpoint answers. The proxy adds `Content-Length`, `X-Request-Id`,
/// `Cache-Control: no-store` (unless `headers` sets a `Cache-Control`) and HSTS on TLS
/// listeners. A value; any thread.
package struct LocalResponse: Sendable {
    package var status: Int
    package var contentType: String
    package var body: [UInt8]
    /// `Location`, `Set-Cookie`, `WWW-Authenticate`, security headers, ...
    package var headers: [GatewayError.HeaderField]

    package init(
        status: Int,
        contentType: String = "application/json",
        body: [UInt8],
        headers: [GatewayError.HeaderField] = []
    ) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
    }

    package init(
        status: Int,
        contentType: String = "application/json",
        body: String,
        headers: [GatewayError.HeaderField] = []
    ) {
        self.init(status: status, contentType: contentType, body: Array(body.utf8), headers: headers)
    }

    /// `error` as the gateway's JSON error body, with its headers.
    package static func json(_ error: GatewayError, requestID: String) -> LocalResponse {
        LocalResponse(status: error.status, body: error.jsonBody(requestID: requestID), headers: error.headers)
    }
}

/// An endpoint the gateway answers itself instead of forwarding (the OAuth authorization
/// server, the browser pages). Built per event loop by the server's factory, rebuilt on
/// every reload, and touched only on its loop. The proxy checks no credential for it: the
/// endpoint authenticates its callers itself.
package protocol LocalEndpoint: AnyObject {
    /// Whether this endpoint answers `normalizedPath`. Called for every request on the
    /// loop: keep it to a few string compares.
    func handles(_ normalizedPath: String) -> Bool
    /// The route label of its requests in metrics and the access log (`builtin ...`).
    var routeLabel: String { get }
    /// The largest request body read for this endpoint; a larger one is refused with 413.
    var maximumBodyBytes: Int64 { get }
    /// The answer; a failure with a `GatewayError` is shown through `errorResponse`, any
    /// other failure as a 500.
    func handle(_ request: LocalRequest, eventLoop: any EventLoop) -> EventLoopFuture<LocalResponse>
    /// How a refusal is shown, whether `handle` failed or the proxy refused the request
    /// before calling it (a body too large, a rate limit).
    func errorResponse(_ error: GatewayError, request: LocalRequest) -> LocalResponse
}

extension LocalEndpoint {
    package var routeLabel: String { "builtin local" }

    /// JSON, like every other error of the gateway.
    package func errorResponse(_ error: GatewayError, request: LocalRequest) -> LocalResponse {
        LocalResponse.json(error, requestID: request.requestID)
    }
}

extension String {
    /// ASCII case-insensitive equality, for header names.
    package func caseInsensitiveEquals(_ other: String) -> Bool {
        let a = self.utf8
        let b = other.utf8
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) where x != y {
            let lx = (x >= 65 && x <= 90) ? x + 32 : x
            let ly = (y >= 65 && y <= 90) ? y + 32 : y
            if lx != ly { return false }
        }
        return true
    }
}
