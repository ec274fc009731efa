import GatewayHTTP1

/// The response rules over raw field bytes, for the writer that forwards an upstream's field
/// lines as received: which names are hop-by-hop, which trailers a client may not see, which
/// `Set-Cookie` values set a gateway cookie. Pure; any thread.
enum ResponseFieldRules {
    /// Fields that describe one connection, never forwarded (RFC 9110 §7.6.1), plus the
    /// framing fields the gateway sets itself.
    static func isHopByHop(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>) -> Bool {
        switch name.count {
        case 2: HTTP1Syntax.equalsIgnoringCase(bytes, name, "te")
        case 7:
            HTTP1Syntax.equalsIgnoringCase(bytes, name, "trailer")
                || HTTP1Syntax.equalsIgnoringCase(bytes, name, "upgrade")
        case 10:
            HTTP1Syntax.equalsIgnoringCase(bytes, name, "connection")
                || HTTP1Syntax.equalsIgnoringCase(bytes, name, "keep-alive")
        case 16: HTTP1Syntax.equalsIgnoringCase(bytes, name, "proxy-connection")
        case 17: HTTP1Syntax.equalsIgnoringCase(bytes, name, "transfer-encoding")
        case 18: HTTP1Syntax.equalsIgnoringCase(bytes, name, "proxy-authenticate")
        case 19: HTTP1Syntax.equalsIgnoringCase(bytes, name, "proxy-authorization")
        default: false
        }
    }

    /// Trailers never forwarded: framing and hop-by-hop fields, cookies (a cookie must be
    /// visible in the head, where the gateway and any cache see it), `X-DBAudit-*`, and the
    /// fields the gateway sets on response heads, so a trailer can never contradict or forge
    /// them.
    static func isForbiddenTrailer(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>) -> Bool {
        Self.isHopByHop(bytes, name) || HTTP1Syntax.equalsIgnoringCase(bytes, name, "content-length")
            || HTTP1Syntax.equalsIgnoringCase(bytes, name, "set-cookie")
            || HTTP1Syntax.equalsIgnoringCase(bytes, name, "set-cookie2")
            || HTTP1Syntax.hasPrefixIgnoringCase(bytes, name, Self.dbauditPrefix)
            || HTTP1Syntax.equalsIgnoringCase(bytes, name, "x-request-id")
            || HTTP1Syntax.hasPrefixIgnoringCase(bytes, name, Self.rateLimitPrefix)
            || HTTP1Syntax.equalsIgnoringCase(bytes, name, "retry-after")
            || HTTP1Syntax.equalsIgnoringCase(bytes, name, "strict-transport-security")
    }

    private static let dbauditPrefix = Array("x-dbaudit-".utf8)
    private static let rateLimitPrefix = Array("ratelimit".utf8)

    /// Whether a `Set-Cookie` value sets one of the gateway's own cookies.
    static func setsGatewayCookie(_ bytes: UnsafeRawBufferPointer, _ value: Range<Int>) -> Bool {
        var end = value.lowerBound
        while end < value.upperBound, bytes[end] != UInt8(ascii: "="), bytes[end] != UInt8(ascii: ";") { end += 1 }
        let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[value.lowerBound..<end]), as: UTF8.self)
        return ForwardingRules.isGatewayCookie(Substring(name).drop { $0 == " " || $0 == "\t" })
    }
}
