import Foundation
import GatewayAuth
import GatewayCrypto

/// How a new key reaches the show-once page without being in a URL or stored readable:
/// the create POST stores the key XOR a pad in the browser-state store (one minute) and
/// gives the browser a random cookie; the pad and the record's id are derived from that
/// cookie, so the store alone holds no key and the cookie alone finds nothing. The first
/// GET deletes the record before showing the key (only the request whose delete removed it
/// shows it), so a reload, Back or a parallel request shows it no more.
/// A value; any thread.
package struct KeyReveal: Codable, Sendable, Hashable {
    package static let lifetimeSeconds: Int64 = 60
    package static func cookieName(isTLS: Bool) -> String { isTLS ? "__Host-dbgw_reveal" : "dbgw_reveal" }

    /// Base64url of the key XOR the pad.
    package var sealed: String
    package var userID: String
    package var keyID: String
    package var name: String

    enum CodingKeys: String, CodingKey {
        case sealed
        case userID = "user_id"
        case keyID = "key_id"
        case name
    }

    /// The store id of the record behind cookie value `cookie` (64 hex characters, so it can
    /// never be taken for an authorization flow id).
    package static func recordID(cookie: String) -> String {
        Hex.encode(HMACSHA256(key: Array(cookie.utf8)).authenticationCode(for: Array("reveal-id".utf8)))
    }

    static func pad(cookie: String, count: Int) -> [UInt8] {
        let mac = HMACSHA256(key: Array(cookie.utf8))
        var pad: [UInt8] = []
        var block = 0
        while pad.count < count {
            block += 1
            pad += mac.authenticationCode(for: Array("reveal-pad-\(block)".utf8))
        }
        return Array(pad.prefix(count))
    }

    package static func seal(key: String, cookie: String, userID: String, keyID: String, name: String) -> KeyReveal {
        let bytes = Array(key.utf8)
        let pad = pad(cookie: cookie, count: bytes.count)
        return KeyReveal(
            sealed: Base64URL.encode(zip(bytes, pad).map { $0 ^ $1 }),
            userID: userID,
            keyID: keyID,
            name: name
        )
    }

    /// The key, or nil if `cookie` is not the one it was sealed for (not a key then).
    package func open(cookie: String) -> String? {
        guard self.sealed.utf8.count <= 256, let bytes = Base64URL.decode(self.sealed.utf8) else { return nil }
        let pad = Self.pad(cookie: cookie, count: bytes.count)
        let key = String(decoding: zip(bytes, pad).map { $0 ^ $1 }, as: UTF8.self)
        return APIKeyFormat.problem(with: key) == nil ? key : nil
    }

    package func json() -> String? {
        (try? JSONEncoder().encode(self)).map { String(decoding: $0, as: UTF8.self) }
    }

    package static func decode(_ json: String) -> KeyReveal? {
        try? JSONDecoder().decode(KeyReveal.self, from: Data(json.utf8))
    }
}
