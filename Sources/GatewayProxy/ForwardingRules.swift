package import GatewayCore
package import GatewayHTTP1
package import NIOCore

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
    /// The id for this request: the client's `X-Request-Id` if it sent exactly one valid
    /// value, otherwise a newly minted one.
    package static func requestID(for head: HTTP1RequestHead, generator: inout RequestIDGenerator) -> String {
        if head.requestID.count == 1, let value = head.value(head.requestID), RequestID.isValid(value) {
            return value
        }
        return generator.next()
    }

    /// The client fields never forwarded besides the hop-by-hop ones (which
    /// `HTTP1HeadRewrite` always drops, with those the client's `Connection` names): the
    /// framing and Host the gateway sets itself, the forwarding, identity and request-id
    /// fields only it may set, `Expect` (the gateway answers it), and optionally the method
    /// overrides, `Authorization` and `Cookie` (when it carries a gateway cookie, the kept
    /// cookies are appended instead). Built once; indexed by `droppedIndex`.
    private static let droppedFields: [HTTP1FieldNames] = (0..<8).map { index in
        var names = ["host", "content-length", "forwarded", "x-request-id", "x-real-ip", "expect"]
        if index & 1 == 0 {
            names += [
                "x-http-method-override", "x-http-method", "x-method-override", "x-original-url", "x-rewrite-url",
            ]
        }
        if index & 2 == 0 { names.append("authorization") }
        if index & 4 != 0 { names.append("cookie") }
        return HTTP1FieldNames(names: names, prefixes: ["x-dbaudit-", "x-forwarded-"])
    }

    private static func droppedIndex(forwardMethodOverride: Bool, forwardAuthorization: Bool, cookie: Bool) -> Int {
        (forwardMethodOverride ? 1 : 0) | (forwardAuthorization ? 2 : 0) | (cookie ? 4 : 0)
    }

    /// The head sent upstream, appended to `buffer`: the client's request line (HTTP/1.1,
    /// the target replaced by `context.uri` when given) and its field lines copied byte for
    /// byte, but hop-by-hop and `Connection`-named fields, gateway-owned fields and those
    /// `context` turns off; then the gateway's own: Host, framing from `framing` alone,
    /// `X-Request-Id`, `X-Forwarded-*` and the identity of the principal.
    package static func writeUpstreamRequestHead(
        _ head: HTTP1RequestHead,
        framing: HTTP1BodyFraming,
        context: ForwardingContext,
        into buffer: inout ByteBuffer
    ) {
        var appended: [(name: String, value: String)] = []
        appended.reserveCapacity(12)
        let cookies = Self.cookiesWithoutGatewayCookies(head)
        if let cookies {
            // The gateway's own browser cookies (session, browser binding, show-once
            // reveal) are credentials for the gateway: never the upstream's to see.
            for value in cookies { appended.append(("Cookie", value)) }
        }
        let clientHost = head.value(head.host)
        let host = context.preserveHost ? (clientHost ?? context.upstreamAuthority) : context.upstreamAuthority
        appended.append(("Host", host))
        switch framing {
        case .none, .untilClose:
            if head.method == .POST || head.method == .PUT || head.method == .PATCH {
                appended.append(("Content-Length", "0"))
            }
        case .contentLength(let length):
            appended.append(("Content-Length", String(length)))
        case .chunked:
            appended.append(("Transfer-Encoding", "chunked"))
        }
        appended.append(("X-Request-Id", context.requestID))
        appended.append(("X-Forwarded-For", context.clientAddress))
        appended.append(("X-Forwarded-Proto", context.clientScheme))
        if let clientHost {
            appended.append(("X-Forwarded-Host", clientHost))
        }
        if let principal = context.principal {
            // Built once per principal (sanitized: no control character can end a line).
            appended.append(contentsOf: identityFields(of: principal))
        }
        let dropped = Self.droppedIndex(
            forwardMethodOverride: context.forwardMethodOverride,
            forwardAuthorization: context.forwardAuthorization,
            cookie: cookies != nil
        )
        HTTP1HeadRewrite(target: context.uri, dropped: Self.droppedFields[dropped], appended: appended)
            .write(head, into: &buffer)
    }

    /// The identity fields the upstream gets for `principal` (`X-DBAudit-*`), sanitized:
    /// built once with the principal, which a cache keeps across requests.
    package static func identityFields(of principal: Principal) -> [(name: String, value: String)] {
        principal.identityHeaders.fields
    }

    /// The client's `Cookie` values without the gateway's own cookies (an emptied one is
    /// left out), when one of them carries a gateway cookie; nil when all go as they are.
    static func cookiesWithoutGatewayCookies(_ head: HTTP1RequestHead) -> [String]? {
        var values: [String]?
        for index in head.fields.indices where head.fieldName(index, equals: "cookie") {
            let value = head.string(head.fields[index].value)
            if value.contains("dbgw_") {
                values = values ?? Self.earlierCookies(head, before: index)
                if let kept = withoutGatewayCookies(value) { values?.append(kept) }
            } else {
                values?.append(value)
            }
        }
        return values
    }

    private static func earlierCookies(_ head: HTTP1RequestHead, before end: Int) -> [String] {
        head.fields.indices[..<end].filter { head.fieldName($0, equals: "cookie") }.map {
            head.string(head.fields[$0].value)
        }
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

extension StringProtocol {
    func trimmingASCIIWhitespace() -> Substring {
        var slice = self[...]
        while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice = slice.dropLast() }
        return Substring(slice)
    }
}
