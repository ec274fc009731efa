package import GatewayCore

/// Reading and writing the gateway's browser cookies. On TLS listeners the names carry the
/// `__Host-` prefix (the browser then insists on Secure, Path=/ and no Domain, so no other
/// host or plain-HTTP page can plant one); on plain listeners they cannot, because a
/// browser refuses prefixed cookies without Secure. Every cookie is HttpOnly,
/// SameSite=Lax, Path=/. Stateless; any thread.
package enum BrowserCookies {
    /// The browser session (who is signed in).
    package static func sessionName(isTLS: Bool) -> String { isTLS ? "__Host-dbgw_session" : "dbgw_session" }
    /// A random id of the browser itself, set at the start of an authorization flow; the
    /// flow remembers its hash, so a flow started in one browser cannot be continued (or
    /// signed into) from another: this is what stops login CSRF.
    package static func browserName(isTLS: Bool) -> String { isTLS ? "__Host-dbgw_browser" : "dbgw_browser" }

    /// Longest cookie value read: ours are 43 characters.
    static let maximumValueBytes = 128

    /// The value of cookie `name` in the request's `Cookie` headers; nil when absent, when
    /// given more than once (an ambiguous cookie is no cookie), or when it is not 43
    /// base64url characters (the only form we write).
    package static func value(named name: String, in cookieHeaders: [String]) -> String? {
        var found: String?
        for header in cookieHeaders {
            for item in header.split(separator: ";") {
                let pair = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard pair.count == 2, trimmed(pair[0]) == name else { continue }
                guard found == nil else { return nil }
                found = trimmed(pair[1])
            }
        }
        guard let found, isTokenValue(found) else { return nil }
        return found
    }

    /// Whether `value` is a 32-byte random value as we write it: 43 base64url characters.
    package static func isTokenValue(_ value: String) -> Bool {
        value.utf8.count == 43
            && value.utf8.allSatisfy { byte in
                FormFields.isUnreserved(byte) && byte != UInt8(ascii: ".") && byte != UInt8(ascii: "~")
            }
    }

    private static func trimmed(_ text: Substring) -> String {
        String(
            text.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed()
        )
    }

    /// A `Set-Cookie` header setting `name` to `value` for `maxAge` seconds.
    package static func set(name: String, value: String, maxAge: Int64, isTLS: Bool) -> GatewayError.HeaderField {
        .init(
            "Set-Cookie",
            "\(name)=\(value); Path=/; Max-Age=\(maxAge); HttpOnly; SameSite=Lax" + (isTLS ? "; Secure" : "")
        )
    }

    /// A `Set-Cookie` header removing `name`.
    package static func clear(name: String, isTLS: Bool) -> GatewayError.HeaderField {
        .init("Set-Cookie", "\(name)=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax" + (isTLS ? "; Secure" : ""))
    }
}
