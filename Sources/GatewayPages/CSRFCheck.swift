import GatewayCrypto

/// The CSRF rule of every page form: the posted token must equal the one the server stored
/// with the flow (or session) the form belongs to, compared in constant time; a missing,
/// empty or malformed token never matches. Pure; any thread.
package enum CSRFCheck {
    /// A fresh token: 32 random bytes, base64url.
    package static func newToken() -> String { PageRandom.token() }

    package static func matches(posted: String?, expected: String?) -> Bool {
        guard let posted, let expected, !expected.isEmpty, posted.utf8.count == expected.utf8.count else {
            return false
        }
        return HMACSHA256.constantTimeEquals(Array(posted.utf8), Array(expected.utf8))
    }
}
