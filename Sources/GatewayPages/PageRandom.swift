import GatewayAuth
import GatewayCrypto

/// Random values of the pages: cookie values, CSRF tokens, flow ids, authorization codes.
/// Stateless; any thread.
package enum PageRandom {
    /// 32 random bytes as 43 base64url characters.
    package static func token() -> String { Base64URL.encode(SecureRandom.bytes(32)) }

    /// Hex SHA-256 of a secret: what the store keeps instead of the secret.
    package static func hash(_ secret: String) -> String { Hex.encode(Digest.sha256.hash(secret.utf8)) }
}
