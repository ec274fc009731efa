/// `[auth.jwt]`: the gateway as a token issuer (login, refresh) and the rules for every JWT
/// it accepts, plus `[[auth.jwt.signing_keys]]` and `[[auth.jwt.issuers]]`.
package struct JWTSettings: Sendable, Hashable {
    /// Our own `iss`. Login, refresh and `/.well-known/jwks.json` exist only when set.
    package var issuer: String?
    /// The `aud` our tokens carry and every accepted token must contain (unless an external
    /// issuer lists its own audiences).
    package var audience: String = "dbaudit-api"
    package var accessTokenTTL: Duration = .seconds(3600)
    package var refreshTokenTTL: Duration = .seconds(30 * 86400)
    /// How long a just-rotated refresh token may be presented again (a lost answer, two
    /// tabs refreshing at once) and get the same successor pair instead of revoking its
    /// family; zero turns the grace off.
    package var refreshReuseGrace: Duration = .seconds(10)
    /// Clock-skew allowance on `exp`, `nbf`, `iat`.
    package var leeway: Duration = .seconds(60)
    /// Longest `exp - iat` accepted from any issuer.
    package var maxTokenLifetime: Duration = .seconds(86400)
    /// Verified tokens remembered per event loop (keyed by a hash of the token).
    package var verifiedCacheEntries: Int = 10_000
    package var signingKeys: [SigningKeySettings] = []
    package var issuers: [IssuerSettings] = []
    /// Passwords are checked with scrypt N = 2^cost (15 by default: ~32 MiB, ~50-100 ms).
    package var passwordHashCost: Int = 15
    /// Login attempts allowed per address and per account in `loginWindow` before 429.
    package var loginAttemptsPerAddress: Int = 20
    package var loginAttemptsPerAccount: Int = 5
    package var loginWindow: Duration = .seconds(60)

    package init() {}

    /// The key new tokens are signed with.
    package var activeSigningKey: SigningKeySettings? { signingKeys.first { $0.active } }
}

/// One `[[auth.jwt.signing_keys]]`: a private key of ours. Exactly one is `active`; the
/// others only verify (and stay in the JWKS) until the tokens they signed have expired.
package struct SigningKeySettings: Sendable, Hashable {
    package enum Algorithm: String, Sendable, Hashable, CaseIterable {
        case rs256 = "RS256"
        case es256 = "ES256"
        case edDSA = "EdDSA"
    }

    package var keyID: String
    package var algorithm: Algorithm = .rs256
    package var privateKeyFile: String
    /// The PEM text, read when the configuration is loaded (so a reload picks up a new file).
    package var privateKeyPEM: Secret
    package var passphrase: Secret?
    package var active: Bool = false

    package init(
        keyID: String,
        algorithm: Algorithm = .rs256,
        privateKeyFile: String,
        privateKeyPEM: Secret,
        passphrase: Secret? = nil,
        active: Bool = false
    ) {
        self.keyID = keyID
        self.algorithm = algorithm
        self.privateKeyFile = privateKeyFile
        self.privateKeyPEM = privateKeyPEM
        self.passphrase = passphrase
        self.active = active
    }
}

/// One `[[auth.jwt.issuers]]`: an external identity provider whose access tokens we accept.
package struct IssuerSettings: Sendable, Hashable {
    package enum KeySource: Sendable, Hashable {
        /// A JWKS document over HTTP(S), refreshed in the background.
        case jwksURL(String)
        /// OIDC discovery: the `jwks_uri` of this `.well-known/openid-configuration` URL.
        case discovery(String)
        /// A JWKS file read with the configuration (may hold `oct` keys: it is ours).
        case file(path: String, contents: Secret)
    }

    package var issuer: String
    package var keySource: KeySource
    /// `aud` must contain one of these; defaults to `[auth.jwt] audience`.
    package var audiences: [String]
    /// Required `typ` header (e.g. `at+jwt`); nil = not checked.
    package var requiredType: String?
    /// Allowed algorithms (a further restriction on the keys' pinned ones); empty = any.
    package var algorithms: [String] = []
    /// Background refresh bounds; the provider's Cache-Control max-age is clamped into them.
    package var minRefreshInterval: Duration = .seconds(60)
    package var maxRefreshInterval: Duration = .seconds(3600)
    /// At most one refetch for an unknown `kid` per this interval.
    package var unknownKeyRefetchInterval: Duration = .seconds(30)
    package var fetchTimeout: Duration = .seconds(5)
    /// CA certificates (PEM) for https JWKS/discovery URLs; nil = the system trust store.
    package var caFile: String?
    /// `sub` required (default). Off for providers whose machine tokens have none.
    package var requireSubject: Bool = true

    package init(issuer: String, keySource: KeySource, audiences: [String], requiredType: String? = nil) {
        self.issuer = issuer
        self.keySource = keySource
        self.audiences = audiences
        self.requiredType = requiredType
    }
}
