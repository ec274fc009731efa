package import GatewayCore
package import NIOHTTP1

/// What the gateway knows about a request that shapes the forwarded head.
package struct ForwardingContext: Sendable, Hashable {
    package var requestID: String
    /// The client's IP address as text (the TCP peer).
    package var clientAddress: String
    /// `http` or `https`: how the client reached the gateway.
    package var clientScheme: String
    /// `Host` to send when the client's is not preserved.
    package var upstreamAuthority: String
    package var preserveHost: Bool
    /// Who the gateway authenticated; nil on open routes.
    package var principal: Principal?
    /// Whether the client's `Authorization` header goes upstream.
    package var forwardAuthorization: Bool
    /// The request target to send (the normalized path and the query); nil keeps the client's.
    package var uri: String?
    /// Whether method and URL override headers go upstream (off by default).
    package var forwardMethodOverride: Bool

    package init(
        requestID: String,
        clientAddress: String,
        clientScheme: String,
        upstreamAuthority: String,
        preserveHost: Bool,
        principal: Principal? = nil,
        forwardAuthorization: Bool = true,
        uri: String? = nil,
        forwardMethodOverride: Bool = false
    ) {
        self.requestID = requestID
        self.clientAddress = clientAddress
        self.clientScheme = clientScheme
        self.upstreamAuthority = upstreamAuthority
        self.preserveHost = preserveHost
        self.principal = principal
        self.forwardAuthorization = forwardAuthorization
        self.uri = uri
        self.forwardMethodOverride = forwardMethodOverride
    }
}

/// The header rewriting between client and upstream, as pure functions
/// over heads so every rule is unit-testable. Any thread.
package enum ForwardingRules {
    /// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1), plus the
    /// framing headers the gateway sets itself.
    static func isHopByHop(_ name: String) -> Bool {
        HeaderName.equals(name, "connection") || HeaderName.equals(name, "keep-alive")
            || HeaderName.equals(name, "proxy-connection") || HeaderName.equals(name, "te")
            || HeaderName.equals(name, "trailer") || HeaderName.equals(name, "transfer-encoding")
            || HeaderName.equals(name, "upgrade") || HeaderName.equals(name, "proxy-authorization")
            || HeaderName.equals(name, "proxy-authenticate")
    }

    /// Headers only the gateway may set towards the upstream: identity and forwarding.
    static func isGatewayOwned(_ name: String) -> Bool {
        HeaderName.hasPrefix(name, "x-dbaudit-") || HeaderName.hasPrefix(name, "x-forwarded-")
            || HeaderName.equals(name, "forwarded") || HeaderName.equals(name, "x-request-id")
            || HeaderName.equals(name, "x-real-ip")
    }

    /// Headers that ask an upstream framework to treat the request as another method or
    /// path. Routes and scopes are decided on the request line, so an upstream honouring
    /// one of these would run what the gateway never authorized.
    static func isMethodOverride(_ name: String) -> Bool {
        HeaderName.equals(name, "x-http-method-override") || HeaderName.equals(name, "x-http-method")
            || HeaderName.equals(name, "x-method-override") || HeaderName.equals(name, "x-original-url")
            || HeaderName.equals(name, "x-rewrite-url")
    }

    /// Lowercased header names listed in `Connection` (they are hop-by-hop too).
    static func connectionNominated(_ headers: HTTPHeaders) -> [String] {
        // Most messages carry no Connection header, or only keep-alive/close: skip the
        // comma-splitting lookup for them.
        guard headers.contains(name: "connection") else { return [] }
        var names: [String] = []
        for value in headers[canonicalForm: "connection"] {
            let token = value.trimmingASCIIWhitespace().lowercased()
            if !token.isEmpty, token != "close", token != "keep-alive" {
                names.append(token)
            }
        }
        return names
    }

    /// The id for this request: the client's `X-Request-Id` if it sent exactly one valid
    /// value, otherwise a newly minted one.
    package static func requestID(for head: HTTPRequestHead, generator: inout RequestIDGenerator) -> String {
        let values = head.headers["x-request-id"]
        if values.count == 1, RequestID.isValid(values[0]) {
            return values[0]
        }
        return generator.next()
    }

    /// The head sent upstream: HTTP/1.1, hop-by-hop and `Connection`-named headers removed,
    /// gateway-owned headers replaced, framing set from `framing` alone.
    package static func upstreamRequestHead(
        _ head: HTTPRequestHead,
        framing: RequestBodyFraming,
        context: ForwardingContext
    ) -> HTTPRequestHead {
        let nominated = connectionNominated(head.headers)
        var headers = HTTPHeaders()
        headers.reserveCapacity(head.headers.count + 6)
        var clientHost: String?
        for (name, value) in head.headers {
            if HeaderName.equals(name, "host") {
                clientHost = value
                continue
            }
            if HeaderName.equals(name, "content-length") || isHopByHop(name) || isGatewayOwned(name) {
                continue
            }
            if !context.forwardMethodOverride, isMethodOverride(name) {
                continue
            }
            if !context.forwardAuthorization, HeaderName.equals(name, "authorization") {
                continue
            }
            if !nominated.isEmpty, nominated.contains(name.lowercased()) {
                continue
            }
            if HeaderName.equals(name, "cookie") {
                // The gateway's own browser cookies (session, browser binding, show-once
                // reveal) are credentials for the gateway: never the upstream's to see.
                if let kept = withoutGatewayCookies(value) { headers.add(name: name, value: kept) }
                continue
            }
            headers.add(name: name, value: value)
        }
        let host = context.preserveHost ? (clientHost ?? context.upstreamAuthority) : context.upstreamAuthority
        headers.add(name: "Host", value: host)
        switch framing {
        case .none:
            if head.method == .POST || head.method == .PUT || head.method == .PATCH {
                headers.add(name: "Content-Length", value: "0")
            }
        case .contentLength(let length):
            headers.add(name: "Content-Length", value: String(length))
        case .chunked:
            headers.add(name: "Transfer-Encoding", value: "chunked")
        }
        headers.add(name: "X-Request-Id", value: context.requestID)
        headers.add(name: "X-Forwarded-For", value: context.clientAddress)
        headers.add(name: "X-Forwarded-Proto", value: context.clientScheme)
        if let clientHost {
            headers.add(name: "X-Forwarded-Host", value: clientHost)
        }
        if let principal = context.principal {
            for (name, value) in identityFields(of: principal) {
                headers.add(name: name, value: value)
            }
        }
        return HTTPRequestHead(version: .http1_1, method: head.method, uri: context.uri ?? head.uri, headers: headers)
    }

    /// The identity fields the upstream gets for `principal` (`X-DBAudit-*`), sanitized:
    /// built once with the principal, which a cache keeps across requests.
    package static func identityFields(of principal: Principal) -> [(name: String, value: String)] {
        principal.identityHeaders.fields
    }

    /// The trailers of an upstream response as the client gets them: no framing or
    /// hop-by-hop fields, no `Set-Cookie` (a cookie must be visible in the head, where the
    /// gateway and any cache see it), no `X-DBAudit-*`, and none of the fields the gateway
    /// sets on response heads (`X-Request-Id`, `RateLimit*`, `Strict-Transport-Security`),
    /// so a trailer can never contradict or forge them. Nil when nothing is left.
    package static func sanitizedResponseTrailers(_ trailers: HTTPHeaders?) -> HTTPHeaders? {
        guard let trailers, !trailers.isEmpty else { return nil }
        var kept = HTTPHeaders()
        for (name, value) in trailers {
            if isHopByHop(name) || HeaderName.equals(name, "content-length")
                || HeaderName.equals(name, "set-cookie") || HeaderName.equals(name, "set-cookie2")
                || HeaderName.hasPrefix(name, "x-dbaudit-") || HeaderName.equals(name, "x-request-id")
                || HeaderName.hasPrefix(name, "ratelimit") || HeaderName.equals(name, "retry-after")
                || HeaderName.equals(name, "strict-transport-security")
            {
                continue
            }
            kept.add(name: name, value: value)
        }
        return kept.isEmpty ? nil : kept
    }

    /// Whether a cookie name is one of the gateway's own (`dbgw_...`, `__Host-dbgw_...`).
    static func isGatewayCookie(_ name: Substring) -> Bool {
        let bare =
            name.hasPrefix("__Host-") ? name.dropFirst(7) : name.hasPrefix("__Secure-") ? name.dropFirst(9) : name
        return bare.hasPrefix("dbgw_")
    }

    /// A `Cookie` header value without the gateway's own cookies; nil when nothing is left.
    static func withoutGatewayCookies(_ value: String) -> String? {
        guard value.contains("dbgw_") else { return value }
        let kept = value.split(separator: ";").filter { pair in
            let name = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            return !isGatewayCookie(name.drop { $0 == " " || $0 == "\t" })
        }
        guard !kept.isEmpty else { return nil }
        return kept.map { $0.drop { $0 == " " || $0 == "\t" } }.joined(separator: "; ")
    }

    /// The cookie name a `Set-Cookie` value sets.
    static func setCookieName(_ value: String) -> Substring {
        let pair = value.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let name = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return name.drop { $0 == " " || $0 == "\t" }
    }

    /// The head sent to the client: hop-by-hop and `Connection`-named headers removed (the
    /// encoder re-frames the body), `X-Request-Id` set, `Connection: close` when the
    /// gateway will close after this response or the client could not find its end
    /// otherwise. Whether to keep the connection is read back from this head.
    package static func clientResponseHead(
        _ head: HTTPResponseHead,
        requestVersion: HTTPVersion,
        requestID: String,
        keepAlive: Bool
    ) -> HTTPResponseHead {
        let nominated = connectionNominated(head.headers)
        var headers = HTTPHeaders()
        headers.reserveCapacity(head.headers.count + 2)
        for (name, value) in head.headers {
            if isHopByHop(name) || HeaderName.equals(name, "x-request-id") {
                continue
            }
            if !nominated.isEmpty, nominated.contains(name.lowercased()) {
                continue
            }
            if HeaderName.equals(name, "set-cookie"), isGatewayCookie(setCookieName(value)) {
                // The upstream may not plant (or clear) a session of the gateway's pages.
                continue
            }
            headers.add(name: name, value: value)
        }
        headers.add(name: "X-Request-Id", value: requestID)
        // An HTTP/1.0 client cannot read chunked framing: without a length (the upstream's
        // may have been named in its `Connection`) the body ends with the connection.
        let delimited = requestVersion.minor != 0 || headers.contains(name: "content-length")
        if !keepAlive || !delimited {
            headers.add(name: "Connection", value: "close")
        } else if requestVersion.minor == 0 {
            headers.add(name: "Connection", value: "keep-alive")
        }
        return HTTPResponseHead(version: requestVersion, status: head.status, headers: headers)
    }
}
