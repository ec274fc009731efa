import GatewayCore

/// What the store keeps about one API key. The key itself is never
/// stored: only its keyed hash, which is the record's address. Immutable value; any
/// thread.
package struct APIKeyRecord: Codable, Sendable, Hashable {
    package var id: String
    package var name: String
    package var scopes: [String]
    package var owner: String
    /// Unix seconds.
    package var createdAt: Int64
    package var expiresAt: Int64?
    package var revoked: Bool
    package var lastUsedAt: Int64?
    /// The key's last four characters, to tell keys apart in lists.
    package var last4: String
    /// `live` or `test`.
    package var environment: String
    /// Name of the `[[rate_limits]]` policy for this key (a tier), or nil for the route's.
    /// Absent in records written before rate limits existed, which decode as nil.
    package var rateLimit: String?

    package init(
        id: String,
        name: String,
        scopes: [String],
        owner: String,
        createdAt: Int64,
        expiresAt: Int64?,
        revoked: Bool = false,
        lastUsedAt: Int64? = nil,
        last4: String,
        environment: String,
        rateLimit: String? = nil
    ) {
        self.id = id
        self.name = name
        self.scopes = scopes
        self.owner = owner
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revoked = revoked
        self.lastUsedAt = lastUsedAt
        self.last4 = last4
        self.environment = environment
        self.rateLimit = rateLimit
    }

    enum CodingKeys: String, CodingKey {
        case id, name, scopes, owner, revoked, last4, environment
        case createdAt = "created_at"
        case expiresAt = "expires_at"
        case lastUsedAt = "last_used_at"
        case rateLimit = "rate_limit"
    }

    /// Redis is hostile until parsed: scopes that are not scope tokens mean the record is not
    /// one the gateway wrote, so it does not decode (the store reports it as corrupt).
    package init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.id = try container.decode(String.self, forKey: .id)
        self.name = try container.decode(String.self, forKey: .name)
        self.scopes = try container.decode([String].self, forKey: .scopes)
        guard ScopeToken.areValid(self.scopes) else {
            throw DecodingError.dataCorruptedError(
                forKey: .scopes,
                in: container,
                debugDescription: "not all scope tokens"
            )
        }
        self.owner = try container.decode(String.self, forKey: .owner)
        self.createdAt = try container.decode(Int64.self, forKey: .createdAt)
        self.expiresAt = try container.decodeIfPresent(Int64.self, forKey: .expiresAt)
        self.revoked = try container.decode(Bool.self, forKey: .revoked)
        self.lastUsedAt = try container.decodeIfPresent(Int64.self, forKey: .lastUsedAt)
        self.last4 = try container.decode(String.self, forKey: .last4)
        self.environment = try container.decode(String.self, forKey: .environment)
        self.rateLimit = try container.decodeIfPresent(String.self, forKey: .rateLimit)
    }

    /// Whether the key may authenticate at `now` (unix seconds).
    package func isUsable(at now: Int64) -> Bool {
        !self.revoked && (self.expiresAt.map { now < $0 } ?? true)
    }
}
