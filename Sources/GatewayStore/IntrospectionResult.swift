import Foundation
import GatewayCore

/// What an introspection endpoint said about one token, as every gateway instance shares
/// it: an inactive answer, or the identity of an active token. Immutable value; any thread.
package struct IntrospectionResult: Codable, Sendable, Hashable {
    package var active: Bool
    package var subject: String?
    package var clientID: String?
    package var scopes: [String]
    /// Who vouched: the answer's `iss`, else the endpoint URL.
    package var issuer: String?
    /// The token's `exp` (unix seconds); nil for an inactive answer.
    package var expiresAt: Int64?
    /// Unix seconds after which nobody uses this answer (never past `expiresAt`, nor past
    /// the configured `cache_max` / `negative_ttl` from when it was asked).
    package var cachedUntil: Int64

    package init(
        active: Bool,
        subject: String?,
        clientID: String?,
        scopes: [String],
        issuer: String?,
        expiresAt: Int64?,
        cachedUntil: Int64
    ) {
        self.active = active
        self.subject = subject
        self.clientID = clientID
        self.scopes = scopes
        self.issuer = issuer
        self.expiresAt = expiresAt
        self.cachedUntil = cachedUntil
    }

    /// An inactive answer remembered until `cachedUntil`.
    package static func inactive(until cachedUntil: Int64) -> IntrospectionResult {
        IntrospectionResult(
            active: false,
            subject: nil,
            clientID: nil,
            scopes: [],
            issuer: nil,
            expiresAt: nil,
            cachedUntil: cachedUntil
        )
    }

    enum CodingKeys: String, CodingKey {
        case active, subject, scopes, issuer
        case clientID = "client_id"
        case expiresAt = "expires_at"
        case cachedUntil = "cached_until"
    }

    /// Redis is hostile until parsed: an active result must name someone and expire, and
    /// carry only scope tokens and bounded strings.
    package init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func text(_ key: CodingKeys) throws -> String? {
            guard let value = try container.decodeIfPresent(String.self, forKey: key) else { return nil }
            guard !value.isEmpty, value.utf8.count <= 1024 else {
                throw DecodingError.dataCorruptedError(
                    forKey: key,
                    in: container,
                    debugDescription: "empty or oversized"
                )
            }
            return value
        }
        self.active = try container.decode(Bool.self, forKey: .active)
        self.subject = try text(.subject)
        self.clientID = try text(.clientID)
        self.issuer = try text(.issuer)
        self.scopes = try container.decode([String].self, forKey: .scopes)
        guard self.scopes.count <= 64, ScopeToken.areValid(self.scopes) else {
            throw DecodingError.dataCorruptedError(
                forKey: .scopes,
                in: container,
                debugDescription: "not all scope tokens"
            )
        }
        self.expiresAt = try container.decodeIfPresent(Int64.self, forKey: .expiresAt)
        self.cachedUntil = try container.decode(Int64.self, forKey: .cachedUntil)
        if self.active, self.subject == nil || self.expiresAt == nil {
            throw DecodingError.dataCorruptedError(
                forKey: .subject,
                in: container,
                debugDescription: "an active result needs a subject and exp"
            )
        }
    }
}
