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
            // Identity values come from the store: never let one carry a line break or
            // other control character into the upstream head.
            headers.add(name: "X-DBAudit-Subject", value: safeValue(principal.subject))
            headers.add(name: "X-DBAudit-Scopes", value: safeValue(principal.scopes.joined(separator: " ")))
            headers.add(name: "X-DBAudit-Credential", value: principal.kind.rawValue)
            if let clientID = principal.clientID {
                headers.add(name: "X-DBAudit-Client-Id", value: safeValue(clientID))
            }
            if let keyID = principal.keyID {
                headers.add(name: "X-DBAudit-Key-Id", value: safeValue(keyID))
            }
            if let issuer = principal.issuer {
                // A subject is unique only within its issuer: say which one vouched for it.
                headers.add(name: "X-DBAudit-Issuer", value: safeValue(issuer))
            }
        }
        return HTTPRequestHead(version: .http1_1, method: head.method, uri: context.uri ?? head.uri, headers: headers)
    }

    /// `value` with every control character (CR, LF, NUL, ...) replaced by a space.
    static func safeValue(_ value: String) -> String {
        guard value.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { return value }
        return String(decoding: value.utf8.map { $0 < 0x20 || $0 == 0x7F ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
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
}
