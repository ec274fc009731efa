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

extension RevocationMessage {
    /// `revoke session <exp> <sid>` on the wire: every access token whose `sid` is `<sid>`
    /// (a refresh family of ours) is refused; the loops keep the entry until `<exp>`.
    package static func encode(sessionID: String, until: Int64) -> String {
        "revoke session \(until) \(sessionID)"
    }

    package static func sessionID(from message: String) -> (id: String, until: Int64)? {
        let parts = message.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "revoke", parts[1] == "session", let until = Self.time(parts[2]),
            Self.isOpaqueID(parts[3])
        else { return nil }
        return (String(parts[3]), until)
    }

    /// `revoke user <exp> <iat> <id>` on the wire: every access token of ours for user `<id>`
    /// issued at or before `<iat>` is refused (`users disable`); kept until `<exp>`.
    package static func encode(userID: String, issuedUpTo: Int64, until: Int64) -> String {
        "revoke user \(until) \(issuedUpTo) \(userID)"
    }

    package static func userID(from message: String) -> (id: String, issuedUpTo: Int64, until: Int64)? {
        let parts = message.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] == "revoke", parts[1] == "user", let until = Self.time(parts[2]),
            let issuedUpTo = Self.time(parts[3]), Self.isOpaqueID(parts[4])
        else { return nil }
        return (String(parts[4]), issuedUpTo, until)
    }

    /// A Unix time in plain decimal digits (no sign, no leading `+`), at most 12 of them.
    static func time(_ text: Substring) -> Int64? {
        guard (1...12).contains(text.utf8.count), text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return Int64(text)
    }

    /// The ids the gateway mints for sessions and users: 1 to 128 base64url characters.
    package static func isOpaqueID(_ text: Substring) -> Bool {
        (1...128).contains(text.utf8.count)
            && text.utf8.allSatisfy {
                ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45 || $0 == 95
            }
    }
}
