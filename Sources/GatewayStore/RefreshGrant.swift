/// What a refresh token grants; stored under the hash of the token, never the token.
package struct RefreshGrant: Codable, Sendable, Hashable {
    /// Every token minted by rotation from one login shares the family; reuse of a rotated
    /// token revokes the whole family (OAuth 2.0 Security BCP §4.14).
    package var family: String
    package var userID: String
    package var subject: String
    package var scopes: [String]
    package var expiresAt: Int64
    package var clientID: String?

    package init(
        family: String,
        userID: String,
        subject: String,
        scopes: [String],
        expiresAt: Int64,
        clientID: String? = nil
    ) {
        self.family = family
        self.userID = userID
        self.subject = subject
        self.scopes = scopes
        self.expiresAt = expiresAt
        self.clientID = clientID
    }

    enum CodingKeys: String, CodingKey {
        case family, subject, scopes
        case userID = "user_id"
        case expiresAt = "expires_at"
        case clientID = "client_id"
    }
}
