/// A signed-in browser: stored under the SHA-256 of its cookie value, never the value.
/// `csrfToken` guards the forms that belong to the session rather than to one flow
/// (sign-out, the settings pages).
package struct BrowserSessionRecord: Codable, Sendable, Hashable {
    package var userID: String
    package var email: String
    package var createdAt: Int64
    package var lastSeen: Int64
    package var csrfToken: String

    package init(userID: String, email: String, createdAt: Int64, lastSeen: Int64, csrfToken: String) {
        self.userID = userID
        self.email = email
        self.createdAt = createdAt
        self.lastSeen = lastSeen
        self.csrfToken = csrfToken
    }

    enum CodingKeys: String, CodingKey {
        case email
        case userID = "user_id"
        case createdAt = "created_at"
        case lastSeen = "last_seen"
        case csrfToken = "csrf_token"
    }
}
