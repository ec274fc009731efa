/// The one check every credential source's scopes pass before they can authorize a request
/// or reach the upstream in `X-DBAudit-Scopes`: external and own JWTs (`scope`, `scp`), API
/// key and user records read from Redis, and scopes given when a key or user is created.
/// Stateless; any thread.
///
/// A scope token is RFC 6749 §3.3 `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )` (printable
/// ASCII without space, `"` and `\`), further without `,`: scopes travel upstream in one
/// header value that readers may split on commas. At most 128 bytes.
package enum ScopeToken {
    package static let maximumLength = 128

    package static func isValid(_ token: some StringProtocol) -> Bool {
        let bytes = token.utf8
        guard !bytes.isEmpty, bytes.count <= Self.maximumLength else { return false }
        return bytes.allSatisfy { byte in
            byte >= 0x21 && byte <= 0x7E && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\")
                && byte != UInt8(ascii: ",")
        }
    }

    /// Whether every element of `scopes` is a scope token.
    package static func areValid(_ scopes: [String]) -> Bool {
        scopes.allSatisfy { Self.isValid($0) }
    }

    /// A space-delimited scope string (an OAuth `scope` parameter or claim) as its tokens, or
    /// nil if any is not a scope token. Only U+0020 separates: a tab, a newline or any other
    /// byte stays inside its token and makes the whole string invalid. Runs of spaces and
    /// spaces at either end are tolerated (they hide nothing); "" is no scopes.
    package static func parseList(_ text: String) -> [String]? {
        var scopes: [String] = []
        for part in text.utf8.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: true) {
            guard let token = String(part), Self.isValid(token) else { return nil }
            scopes.append(token)
        }
        return scopes
    }
}
