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

/// One `[[oauth.clients]]` entry. The secret (confidential clients only) comes from
/// `secret_file` or `secret_env` and is never rendered.
package struct OAuthClientSettings: Sendable, Hashable {
    package var id: String
    package var name: String
    package var redirectURIs: [String] = []
    package var grantTypes: Set<OAuthGrantType> = [.authorizationCode, .refreshToken]
    package var scopes: [String] = []
    package var isPublic: Bool = false
    package var tokenFormat: OAuthTokenFormat = .jwt
    package var secret: Secret?

    package init(
        id: String, name: String, redirectURIs: [String] = [], grantTypes: Set<OAuthGrantType> = [.authorizationCode, .refreshToken],
        scopes: [String] = [], isPublic: Bool = false, tokenFormat: OAuthTokenFormat = .jwt, secret: Secret? = nil
    ) {
        self.id = id
        self.name = name
        self.redirectURIs = redirectURIs
        self.grantTypes = grantTypes
        self.scopes = scopes
        self.isPublic = isPublic
        self.tokenFormat = tokenFormat
        self.secret = secret
    }
}

/// The character rules of client ids: only RFC 3986 unreserved characters, so an id
/// travels in a URL, a form and a Basic header without any encoding. Pure; any thread.
package enum OAuthClientID {
    package static let maximumLength = 64

    package static func isValid(_ id: some StringProtocol) -> Bool {
        let bytes = id.utf8
        guard !bytes.isEmpty, bytes.count <= maximumLength else { return false }
        return bytes.allSatisfy(isUnreserved)
    }

    /// `A-Z a-z 0-9 - . _ ~` (RFC 3986 §2.3).
    package static func isUnreserved(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "~")
    }
}
