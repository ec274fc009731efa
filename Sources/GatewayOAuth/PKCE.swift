import GatewayAuth
import GatewayCrypto

/// Proof Key for Code Exchange (RFC 7636) with the `S256` method only: `plain` would give
/// an attacker who saw the authorization request the verifier itself. Pure; any thread.
package enum PKCE {
    package static let method = "S256"

    /// RFC 7636 §4.1: 43-128 characters of `A-Z a-z 0-9 - . _ ~`.
    package static func isValidVerifier(_ verifier: String) -> Bool {
        let bytes = verifier.utf8
        guard bytes.count >= 43, bytes.count <= 128 else { return false }
        return bytes.allSatisfy(isUnreserved)
    }

    /// An S256 challenge is the base64url (no padding) SHA-256: exactly 43 characters.
    package static func isValidChallenge(_ challenge: String) -> Bool {
        challenge.utf8.count == 43 && Base64URL.decode(Array(challenge.utf8))?.count == 32
    }

    /// BASE64URL(SHA256(ASCII(verifier))).
    package static func challenge(for verifier: String) -> String {
        Base64URL.encode(Digest.sha256.hash(Array(verifier.utf8)))
    }

    /// Whether `verifier` is well formed and hashes to `challenge`, compared in constant time.
    package static func verify(verifier: String, challenge: String) -> Bool {
        guard isValidVerifier(verifier) else { return false }
        return HMACSHA256.constantTimeEquals(Array(Self.challenge(for: verifier).utf8), Array(challenge.utf8))
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
            || byte == UInt8(ascii: "~")
    }
}
