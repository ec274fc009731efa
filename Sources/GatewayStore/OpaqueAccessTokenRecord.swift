import Foundation
import GatewayCore

/// What the gateway knows about one opaque OAuth access token (`dbaudit_at_…`). The token
/// itself is never stored: only its SHA-256, which is the record's address (a 256-bit random
/// token needs no pepper). Immutable value; any thread.
package struct OpaqueAccessTokenRecord: Codable, Sendable, Hashable {
    package var clientID: String
    /// The user's id (authorization code) or `client:<client id>` (client credentials).
    package var subject: String
    package var scopes: [String]
    /// Unique per token, like a JWT's `jti` (logs, introspection).
    package var tokenID: String
    /// Unix seconds.
    package var issuedAt: Int64
    /// Unix seconds; the Redis key expires then too.
    package var expiresAt: Int64

    package init(
        clientID: String,
        subject: String,
        scopes: [String],
        tokenID: String,
        issuedAt: Int64,
        expiresAt: Int64
    ) {
        self.clientID = clientID
        self.subject = subject
        self.scopes = scopes
        self.tokenID = tokenID
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
    }

    enum CodingKeys: String, CodingKey {
        case subject, scopes
        case clientID = "client_id"
        case tokenID = "token_id"
        case issuedAt = "issued_at"
        case expiresAt = "expires_at"
    }

    /// Redis is hostile until parsed: a record whose identifiers are empty or oversized, or
    /// whose scopes are not scope tokens, is not one the gateway wrote and does not decode.
    package init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func text(_ key: CodingKeys) throws -> String {
            let value = try container.decode(String.self, forKey: key)
            guard !value.isEmpty, value.utf8.count <= 256 else {
                throw DecodingError.dataCorruptedError(
                    forKey: key,
                    in: container,
                    debugDescription: "empty or longer than 256 bytes"
                )
            }
            return value
        }
        self.clientID = try text(.clientID)
        self.subject = try text(.subject)
        self.tokenID = try text(.tokenID)
        self.scopes = try container.decode([String].self, forKey: .scopes)
        guard self.scopes.count <= 256, ScopeToken.areValid(self.scopes) else {
            throw DecodingError.dataCorruptedError(
                forKey: .scopes,
                in: container,
                debugDescription: "not all scope tokens"
            )
        }
        self.issuedAt = try container.decode(Int64.self, forKey: .issuedAt)
        self.expiresAt = try container.decode(Int64.self, forKey: .expiresAt)
    }

    /// Whether the token may authenticate at `now` (unix seconds).
    package func isUsable(at now: Int64) -> Bool { now < self.expiresAt }
}
