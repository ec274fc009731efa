/// What an authorization code stands for, stored (as this JSON) under the SHA-256 of the
/// code, never the code. Written by the authorize pages, redeemed once at the token endpoint.
package struct AuthorizationCodeRecord: Codable, Sendable, Hashable {
    package var clientID: String
    /// Exactly as given in the authorization request; the token request must repeat it.
    package var redirectURI: String
    /// The S256 `code_challenge`; nil when the (confidential) client sent none.
    package var codeChallenge: String?
    /// The user's id: the subject of the tokens.
    package var userID: String
    package var email: String
    package var scopes: [String]
    package var issuedAt: Int64
    package var expiresAt: Int64

    package init(
        clientID: String,
        redirectURI: String,
        codeChallenge: String?,
        userID: String,
        email: String,
        scopes: [String],
        issuedAt: Int64,
        expiresAt: Int64
    ) {
        self.clientID = clientID
        self.redirectURI = redirectURI
        self.codeChallenge = codeChallenge
        self.userID = userID
        self.email = email
        self.scopes = scopes
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
    }

    enum CodingKeys: String, CodingKey {
        case email, scopes
        case clientID = "client_id"
        case redirectURI = "redirect_uri"
        case codeChallenge = "code_challenge"
        case userID = "user_id"
        case issuedAt = "issued_at"
        case expiresAt = "expires_at"
    }
}
