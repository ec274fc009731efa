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

    /// Whether a `Set-Cookie` value sets one of the gateway's own cookies, as a browser reads
    /// it (RFC 6265 §5.2): the name is trimmed of whitespace on both sides, and a pair without
    /// a name (`=dbgw_session=x`) or without `=` is a nameless cookie whose value the browser
    /// sends back alone, so that value is what it would set.
    static func setsGatewayCookie(_ bytes: UnsafeRawBufferPointer, _ value: Range<Int>) -> Bool {
        var pairEnd = value.lowerBound
        while pairEnd < value.upperBound, bytes[pairEnd] != UInt8(ascii: ";") { pairEnd += 1 }
        var equals = value.lowerBound
        while equals < pairEnd, bytes[equals] != UInt8(ascii: "=") { equals += 1 }
        var name = HTTP1Syntax.trimmed(bytes, value.lowerBound..<equals)
        if name.isEmpty, equals < pairEnd {
            name = HTTP1Syntax.trimmed(bytes, (equals + 1)..<pairEnd)
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[name]), as: UTF8.self)
        return ForwardingRules.isGatewayCookie(Substring(text))
    }
}
