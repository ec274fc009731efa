/// Messages about revoked credentials, fanned out to every event loop's cache (through
/// Redis pub/sub across instances, directly within one process).
package enum RevocationMessage {
    /// `revoke apikey <hash>` on the wire.
    package static func encode(apiKeyHash: String) -> String {
        "revoke apikey \(apiKeyHash)"
    }

    /// The API-key hash named by `message`, or nil if it is not a well-formed revocation.
    package static func apiKeyHash(from message: String) -> String? {
        let parts = message.split(separator: " ")
        guard parts.count == 3, parts[0] == "revoke", parts[1] == "apikey", parts[2].utf8.count == 64,
            parts[2].utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) })
        else { return nil }
        return String(parts[2])
    }
}

extension RevocationMessage {
    /// `revoke jti <exp> <jti>` on the wire (the id last: it may be any printable text).
    package static func encode(tokenID: String, expiresAt: Int64) -> String {
        "revoke jti \(expiresAt) \(tokenID)"
    }

    package static func tokenID(from message: String) -> (id: String, expiresAt: Int64)? {
        let parts = message.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "revoke", parts[1] == "jti", let exp = Int64(parts[2]),
            !parts[3].isEmpty, parts[3].utf8.count <= 128
        else { return nil }
        return (String(parts[3]), exp)
    }
}

extension RevocationMessage {
    /// `revoke oauth-at <hash>` on the wire.
    package static func encode(opaqueAccessTokenHash hash: String) -> String {
        "revoke oauth-at \(hash)"
    }

    /// The opaque access token hash named by `message`, or nil if it is not a well-formed
    /// revocation of one.
    package static func opaqueAccessTokenHash(from message: String) -> String? {
        let parts = message.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "revoke", parts[1] == "oauth-at", Self.isHashHex(parts[2]) else {
            return nil
        }
        return String(parts[2])
    }

    /// 64 lowercase hex digits: the only shape a hash in a message may have.
    static func isHashHex(_ text: Substring) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }
}
