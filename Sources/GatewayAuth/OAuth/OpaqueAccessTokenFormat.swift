import GatewayCrypto

/// The text of an opaque OAuth access token: `dbaudit_at_` and 43 base64url characters (32
/// random bytes), and the SHA-256 (hex) that addresses its record. A token has 256 bits of
/// entropy, so an unkeyed hash is enough: nobody can guess a token from the store. Pure;
/// any thread.
package enum OpaqueAccessTokenFormat {
    package static let prefix = "dbaudit_at_"
    package static let randomCharacters = 43
    package static let length = prefix.utf8.count + randomCharacters

    /// Whether `token` claims to be one of ours (then it is never introspected elsewhere).
    package static func hasPrefix(_ token: String) -> Bool {
        token.utf8.starts(with: prefix.utf8)
    }

    /// Whether `token` is exactly prefix + 43 base64url characters.
    package static func isWellFormed(_ token: String) -> Bool {
        let bytes = token.utf8
        guard bytes.count == length, hasPrefix(token) else { return false }
        return bytes.dropFirst(prefix.utf8.count).allSatisfy { byte in
            (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
        }
    }

    /// The lowercase hex SHA-256 of the token: its record's address.
    package static func hash(_ token: String) -> String {
        Digest.sha256.hexHash(token.utf8)
    }

    /// A new token and its hash (for the token endpoint).
    package static func generate() -> (token: String, hash: String) {
        let token = prefix + Base64URL.encode(SecureRandom.bytes(32))
        return (token, hash(token))
    }
}
