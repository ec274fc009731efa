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

/// What the token endpoint issued from one code, so a second redemption can revoke it.
package struct CodeIssuance: Codable, Sendable, Hashable {
    /// SHA-256 hex of the refresh token (its family is revoked on reuse).
    package var refreshTokenHash: String?
    /// The refresh family (the access tokens refreshed from it are revoked on reuse).
    package var family: String?
    /// The JWT access token's `jti` and `exp` (denied on reuse).
    package var accessTokenID: String?
    package var accessTokenExpiresAt: Int64?
    /// SHA-256 hex of an opaque access token (deleted on reuse).
    package var opaqueAccessTokenHash: String?

    package init(
        refreshTokenHash: String? = nil,
        family: String? = nil,
        accessTokenID: String? = nil,
        accessTokenExpiresAt: Int64? = nil,
        opaqueAccessTokenHash: String? = nil
    ) {
        self.refreshTokenHash = refreshTokenHash
        self.family = family
        self.accessTokenID = accessTokenID
        self.accessTokenExpiresAt = accessTokenExpiresAt
        self.opaqueAccessTokenHash = opaqueAccessTokenHash
    }

    enum CodingKeys: String, CodingKey {
        case refreshTokenHash = "refresh_token_hash"
        case family
        case accessTokenID = "access_jti"
        case accessTokenExpiresAt = "access_exp"
        case opaqueAccessTokenHash = "access_token_hash"
    }
}

/// An access token issued under a refresh family: a JWT by its `jti` and `exp`, or an
/// opaque token by its hash. Stored as `j <exp> <jti>` or `o <hash>`.
package enum GrantAccessToken: Sendable, Hashable {
    case jwt(tokenID: String, expiresAt: Int64)
    case opaque(hash: String)

    var stored: String {
        switch self {
        case .jwt(let id, let expiresAt): "j \(expiresAt) \(id)"
        case .opaque(let hash): "o \(hash)"
        }
    }

    init?(stored: String) {
        let parts = stored.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        if parts.count == 3, parts[0] == "j", let expiresAt = Int64(parts[1]), !parts[2].isEmpty,
            parts[2].utf8.count <= 128
        {
            self = .jwt(tokenID: String(parts[2]), expiresAt: expiresAt)
        } else if parts.count == 2, parts[0] == "o", parts[1].utf8.count == 64 {
            self = .opaque(hash: String(parts[1]))
        } else {
            return nil
        }
    }
}

/// The result of presenting an authorization code.
package enum CodeRedemption: Sendable, Hashable {
    /// First use: the code is now spent and this is what it grants.
    case redeemed(AuthorizationCodeRecord)
    /// Already redeemed: `issued` is what the first redemption recorded (nil if it has not
    /// recorded anything yet; it then learns of the reuse from `recordIssued`).
    case reused(AuthorizationCodeRecord, issued: CodeIssuance?)
    /// Unknown or expired.
    case invalid
}
