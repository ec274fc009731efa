import GatewayCore

/// `[oauth]`: the gateway as an OAuth 2.0 authorization server (authorize pages, token,
/// revocation, introspection, metadata) and its `[[oauth.clients]]`. Present only when the
/// file has an `[oauth]` table; it needs `[auth.jwt]` with an issuer and `[redis]`.
/// Immutable configuration; any thread.
package struct OAuthSettings: Sendable, Hashable {
    /// Lifetime of an authorization code (RFC 6749 §4.1.2 recommends at most 10 minutes; we
    /// allow at most 60 seconds).
    package var codeTTL: Duration = .seconds(60)
    /// Token-endpoint requests allowed per client id and per client address, per minute.
    package var tokenRequestsPerClient: Int = 600
    package var tokenRequestsPerAddress: Int = 300
    /// Clients declared in the file; they win over CLI-registered clients of the same id.
    package var clients: [OAuthClientSettings] = []

    package init() {}

    /// The declared client `id`, if any.
    package func client(id: String) -> OAuthClientSettings? {
        self.clients.first { $0.id == id }
    }
}

/// The grants a client may use at the token endpoint.
package enum OAuthGrantType: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    case authorizationCode = "authorization_code"
    case refreshToken = "refresh_token"
    case clientCredentials = "client_credentials"

    package static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// How a client's access tokens look: a signed JWT (RFC 9068) or an opaque random string
/// looked up in Redis.
package enum OAuthTokenFormat: String, Sendable, Hashable, Codable, CaseIterable {
    case jwt
    case opaque
}
