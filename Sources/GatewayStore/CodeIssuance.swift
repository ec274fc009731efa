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
