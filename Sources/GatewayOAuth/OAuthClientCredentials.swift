import GatewayAuth
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
}
