/// What the session store says about one access token of ours on first sight: whether its
/// `jti` is denied, whether its session (`sid`, a refresh family) was ended, and up to which
/// `iat` its user's tokens were revoked (`users disable`). Immutable value; any thread.
package struct AccessTokenDenial: Sendable, Equatable {
    package var tokenIDRevoked: Bool
    package var sessionRevoked: Bool
    /// Tokens of the user issued at or before this Unix time are dead; nil: none are.
    package var userRevokedUpTo: Int64?

    package init(tokenIDRevoked: Bool = false, sessionRevoked: Bool = false, userRevokedUpTo: Int64? = nil) {
        self.tokenIDRevoked = tokenIDRevoked
        self.sessionRevoked = sessionRevoked
        self.userRevokedUpTo = userRevokedUpTo
    }

    /// How long a session or user revocation is kept (in the store and on every loop):
    /// the longest access token the gateway can issue (`access_token_ttl` is at most 24 h)
    /// plus the largest `leeway` (10 min) and a margin, whatever the configuration says now
    /// (a reload may shorten the lifetime of tokens already issued under a longer one).
    package static let retentionSeconds: Int64 = 86_400 + 600 + 300
}

/// A revocation the process-local session data tells every loop about (what pub/sub
/// carries between instances). Immutable value; any thread.
package enum SessionRevocation: Sendable, Equatable {
    /// One access token, by `jti`, until its `exp`.
    case tokenID(String, expiresAt: Int64)
    /// Every access token whose `sid` names this session (refresh family).
    case session(String, until: Int64)
    /// Every access token of this user issued at or before `issuedUpTo`.
    case user(String, issuedUpTo: Int64, until: Int64)
}
