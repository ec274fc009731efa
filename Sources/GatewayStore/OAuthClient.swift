package import GatewayConfig

/// A registered OAuth 2.0 client: declared in the configuration (`[[oauth.clients]]`) or
/// registered with `dbaudit-gateway clients add` (stored in Redis as this JSON). The secret
/// of a confidential client is kept only as HMAC-SHA256(pepper, secret) in hex, like API
/// keys. A value type; any thread.
package struct OAuthClient: Codable, Sendable, Hashable {
    package enum Source: String, Codable, Sendable, Hashable {
        case config
        case store
    }

    package var id: String
    package var name: String
    package var redirectURIs: [String]
    package var grantTypes: Set<OAuthGrantType>
    package var scopes: [String]
    /// A public client (a browser or native app) has no secret and must use PKCE.
    package var isPublic: Bool
    package var tokenFormat: OAuthTokenFormat
    /// May introspect access tokens issued to any client (a resource server).
    package var isResourceServer: Bool
    /// Hex HMAC-SHA256 of the secret under the pepper; nil for public clients.
    package var secretHash: String?
    package var source: Source
    package var createdAt: Int64

    package init(
        id: String,
        name: String,
        redirectURIs: [String],
        grantTypes: Set<OAuthGrantType>,
        scopes: [String],
        isPublic: Bool,
        tokenFormat: OAuthTokenFormat = .jwt,
        isResourceServer: Bool = false,
        secretHash: String?,
        source: Source,
        createdAt: Int64
    ) {
        self.isResourceServer = isResourceServer
        self.id = id
        self.name = name
        self.redirectURIs = redirectURIs
        self.grantTypes = grantTypes
        self.scopes = scopes
        self.isPublic = isPublic
        self.tokenFormat = tokenFormat
        self.secretHash = secretHash
        self.source = source
        self.createdAt = createdAt
    }

    /// A declared (or about to be registered) client, with its secret already hashed.
    package init(_ settings: OAuthClientSettings, secretHash: String?, source: Source, createdAt: Int64) {
        self.init(
            id: settings.id,
            name: settings.name,
            redirectURIs: settings.redirectURIs,
            grantTypes: settings.grantTypes,
            scopes: settings.scopes,
            isPublic: settings.isPublic,
            tokenFormat: settings.tokenFormat,
            isResourceServer: settings.isResourceServer,
            secretHash: secretHash,
            source: source,
            createdAt: createdAt
        )
    }

    package func allows(_ grant: OAuthGrantType) -> Bool { self.grantTypes.contains(grant) }

    enum CodingKeys: String, CodingKey {
        case id, name, scopes, source
        case redirectURIs = "redirect_uris"
        case grantTypes = "grant_types"
        case isPublic = "public"
        case tokenFormat = "token_format"
        case isResourceServer = "resource_server"
        case secretHash = "secret_hash"
        case createdAt = "created_at"
    }

    package init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.id = try container.decode(String.self, forKey: .id)
        self.name = try container.decode(String.self, forKey: .name)
        self.redirectURIs = try container.decode([String].self, forKey: .redirectURIs)
        self.grantTypes = Set(try container.decode([OAuthGrantType].self, forKey: .grantTypes))
        self.scopes = try container.decode([String].self, forKey: .scopes)
        self.isPublic = try container.decode(Bool.self, forKey: .isPublic)
        self.tokenFormat = try container.decodeIfPresent(OAuthTokenFormat.self, forKey: .tokenFormat) ?? .jwt
        self.isResourceServer = try container.decodeIfPresent(Bool.self, forKey: .isResourceServer) ?? false
        self.secretHash = try container.decodeIfPresent(String.self, forKey: .secretHash)
        self.source = try container.decodeIfPresent(Source.self, forKey: .source) ?? .store
        self.createdAt = try container.decode(Int64.self, forKey: .createdAt)
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.id, forKey: .id)
        try container.encode(self.name, forKey: .name)
        try container.encode(self.redirectURIs, forKey: .redirectURIs)
        // Sorted, so the stored JSON of one client is always the same text.
        try container.encode(self.grantTypes.sorted(), forKey: .grantTypes)
        try container.encode(self.scopes, forKey: .scopes)
        try container.encode(self.isPublic, forKey: .isPublic)
        try container.encode(self.tokenFormat, forKey: .tokenFormat)
        try container.encode(self.isResourceServer, forKey: .isResourceServer)
        try container.encodeIfPresent(self.secretHash, forKey: .secretHash)
        try container.encode(self.source, forKey: .source)
        try container.encode(self.createdAt, forKey: .createdAt)
    }
}
