import GatewayAuth
package import GatewayConfig
import GatewayCrypto

/// The formats of generated client ids (`cid_` + 22 base64url characters: 16 random bytes)
/// and secrets (`dbaudit_cs_` + 43 base64url characters: 32 random bytes). Both use only
/// RFC 3986 unreserved characters, so they need no encoding in a form, a URL or a Basic
/// header. Pure; any thread.
package enum OAuthClientCredentials {
    package static let idPrefix = "cid_"
    package static let secretPrefix = "dbaudit_cs_"
    package static let minimumSecretLength = 32
    package static let maximumSecretLength = 256

    package static func generateID() -> String {
        idPrefix + Base64URL.encode(SecureRandom.bytes(16))
    }

    package static func generateSecret() -> String {
        secretPrefix + Base64URL.encode(SecureRandom.bytes(32))
    }

    /// Why `secret` (from a `[[oauth.clients]]` file or variable) is unusable, or nil.
    package static func problem(withSecret secret: String) -> String? {
        let bytes = secret.utf8
        guard bytes.count >= minimumSecretLength, bytes.count <= maximumSecretLength else {
            return "the secret must be \(minimumSecretLength)-\(maximumSecretLength) characters"
        }
        guard bytes.allSatisfy(OAuthClientID.isUnreserved) else {
            return "the secret may contain only A-Z a-z 0-9 - . _ ~"
        }
        return nil
    }
}
