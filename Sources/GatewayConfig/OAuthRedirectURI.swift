/// The rules for redirect URIs (RFC 6749 §3.1.2, RFC 8252 §7.3, RFC 9700 §4.1): what may be
/// registered, and whether a presented URI matches a registered one. Registration accepts
/// absolute `https` URIs, and plain `http` only to the loopback literals `127.0.0.1` and
/// `[::1]` (native apps); never a fragment, a wildcard, userinfo, whitespace or a dot
/// segment. Matching is exact string comparison, except that a registered loopback URI
/// matches any port (a native app listens on whatever port it got). Pure; any thread.
package enum OAuthRedirectURI {
    package static let maximumLength = 2000

    private static let loopbackPrefixes = ["http://127.0.0.1", "http://[::1]"]

    /// Why `uri` cannot be registered, or nil if it can.
    package static func problem(with uri: String) -> String? {
        let bytes = Array(uri.utf8)
        guard !bytes.isEmpty, bytes.count <= maximumLength else { return "must be 1-\(maximumLength) characters" }
        guard bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return "must be printable ASCII without spaces" }
        if bytes.contains(UInt8(ascii: "#")) { return "must not contain a fragment (#)" }
        if bytes.contains(UInt8(ascii: "*")) { return "must not contain a wildcard (*)" }
        if bytes.contains(UInt8(ascii: "\\")) { return "must not contain a backslash" }
        guard let parts = split(uri) else {
            return "must be an absolute https:// URI, or http://127.0.0.1 or http://[::1] (any port) for native apps"
        }
        if parts.authority.contains("@") { return "must not contain userinfo (user@host)" }
        if parts.scheme == "http" {
            guard loopbackPrefixes.contains(where: { uri.hasPrefix($0) }), loopbackParts(uri) != nil else {
                return "http:// is allowed only for the loopback addresses 127.0.0.1 and [::1] (use https:// otherwise)"
            }
        } else {
            guard isValidHTTPSAuthority(parts.authority) else { return "has an invalid host or port" }
        }
        let path = parts.rest.prefix { $0 != "?" }
        if path.split(separator: "/", omittingEmptySubsequences: false).contains(where: { $0 == "." || $0 == ".." }) {
            return "must not contain . or .. path segments"
        }
        if !isValidPercentEncoding(Array(parts.rest.utf8)) { return "has an invalid percent-encoding" }
        return nil
    }

    /// Whether `presented` (from an authorization request) matches the registered `uri`.
    package static func matches(registered: String, presented: String) -> Bool {
        if registered == presented { return true }
        guard let registeredParts = loopbackParts(registered), let presentedParts = loopbackParts(presented) else {
            return false
        }
        return registeredParts.host == presentedParts.host && registeredParts.rest == presentedParts.rest
    }

    /// Whether `uri` is a loopback redirect URI (`http://127.0.0.1...` or `http://[::1]...`).
    package static func isLoopback(_ uri: String) -> Bool { loopbackParts(uri) != nil }

    /// `scheme`, `authority` and the rest (path and query) of an absolute http(s) URI.
    private static func split(_ uri: String) -> (scheme: String, authority: Substring, rest: Substring)? {
        let scheme: String
        if uri.hasPrefix("https://") {
            scheme = "https"
        } else if uri.hasPrefix("http://") {
            scheme = "http"
        } else {
            return nil
        }
        let afterScheme = uri.dropFirst(scheme.count + 3)
        let end = afterScheme.firstIndex { $0 == "/" || $0 == "?" } ?? afterScheme.endIndex
        let authority = afterScheme[..<end]
        guard !authority.isEmpty else { return nil }
        return (scheme, authority, afterScheme[end...])
    }

    /// The loopback host (`127.0.0.1` or `[::1]`) and the part after the port, or nil if
    /// `uri` is not a well-formed loopback URI.
    private static func loopbackParts(_ uri: String) -> (host: String, rest: Substring)? {
        for prefix in loopbackPrefixes where uri.hasPrefix(prefix) {
            var rest = uri.dropFirst(prefix.count)
            if rest.first == ":" {
                let digits = rest.dropFirst().prefix { $0.isASCII && $0.isNumber }
                guard !digits.isEmpty, digits.count <= 5, let port = Int(digits), port <= 65535 else { return nil }
                rest = rest.dropFirst(1 + digits.count)
            }
            guard rest.isEmpty || rest.first == "/" || rest.first == "?" else { return nil }
            return (String(prefix.dropFirst(7)), rest)
        }
        return nil
    }

    private static func isValidHTTPSAuthority(_ authority: Substring) -> Bool {
        var host = authority
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
            let port = authority[authority.index(after: colon)...]
            guard !port.isEmpty, port.count <= 5, port.allSatisfy({ $0.isASCII && $0.isNumber }), Int(port)! <= 65535
            else { return false }
            host = authority[..<colon]
        }
        guard !host.isEmpty else { return false }
        if host.hasPrefix("[") { return host.hasSuffix("]") && host.count > 2 }
        return host.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
        }
    }

    private static func isValidPercentEncoding(_ bytes: [UInt8]) -> Bool {
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "%") {
                guard index + 2 < bytes.count, isHex(bytes[index + 1]), isHex(bytes[index + 2]) else { return false }
                index += 3
            } else {
                index += 1
            }
        }
        return true
    }

    private static func isHex(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66)
    }
}
