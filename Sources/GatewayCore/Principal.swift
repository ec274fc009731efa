/// Who is calling, whatever credential proved it: scopes and rate limits
/// apply to the principal, never to the credential kind. Immutable; any thread.
package struct Principal: Sendable, Hashable {
    /// The credential kind, as sent upstream in `X-DBAudit-Credential`.
    package enum CredentialKind: String, Sendable, Hashable {
        case apiKey = "api_key"
        case jwt
        case oauth
    }

    // Every property sent upstream or naming the bucket rebuilds `identityHeaders` and
    // `rateLimitKey` when set (only while a principal is made: a cached one is never
    // changed), so requests served by a cached principal build neither.
    package var subject: String { didSet { self.derive() } }
    package var kind: CredentialKind { didSet { self.derive() } }
    package var scopes: [String] { didSet { self.derive() } }
    package var clientID: String? { didSet { self.derive() } }
    package var keyID: String? { didSet { self.derive() } }
    /// Unix seconds, if the credential expires.
    package var expiresAt: Int64?
    /// A `[[rate_limits]]` policy named by the credential itself (an API key's tier).
    package var rateLimit: String?
    /// The `iss` of a JWT principal (our own issuer or a trusted external one).
    package var issuer: String? { didSet { self.derive() } }
    /// A token of another authorization server (introspected): its client ids are that
    /// server's, so its buckets are kept apart from those of our own clients.
    package var issuedElsewhere = false { didSet { self.derive() } }
    /// The identity fields the upstream gets, built once from the properties above.
    package private(set) var identityHeaders: IdentityHeaders
    /// The token-bucket key of this principal: the key id of an API key, the client id of
    /// an OAuth client, else the kind and subject.
    package private(set) var rateLimitKey: String

    package init(
        subject: String,
        kind: CredentialKind,
        scopes: [String],
        clientID: String? = nil,
        keyID: String? = nil,
        expiresAt: Int64? = nil,
        rateLimit: String? = nil
    ) {
        self.rateLimit = rateLimit
        self.subject = subject
        self.kind = kind
        self.scopes = scopes
        self.clientID = clientID
        self.keyID = keyID
        self.expiresAt = expiresAt
        self.identityHeaders = IdentityHeaders(
            subject: subject,
            kind: kind,
            scopes: scopes,
            clientID: clientID,
            keyID: keyID,
            issuer: nil
        )
        self.rateLimitKey = Self.rateLimitKey(
            kind: kind,
            subject: subject,
            clientID: clientID,
            keyID: keyID,
            issuer: nil,
            issuedElsewhere: false
        )
    }

    private mutating func derive() {
        self.identityHeaders = IdentityHeaders(of: self)
        self.rateLimitKey = Self.rateLimitKey(
            kind: self.kind,
            subject: self.subject,
            clientID: self.clientID,
            keyID: self.keyID,
            issuer: self.issuer,
            issuedElsewhere: self.issuedElsewhere
        )
    }

    private static func rateLimitKey(
        kind: CredentialKind,
        subject: String,
        clientID: String?,
        keyID: String?,
        issuer: String?,
        issuedElsewhere: Bool
    ) -> String {
        if let keyID { return "key:" + keyID }
        if let clientID, kind == .oauth {
            if issuedElsewhere { return "client:" + (issuer ?? "external") + " " + clientID }
            return "client:" + clientID
        }
        // Subjects are only unique within their issuer: one issuer's "usr_x" must not drain
        // another's bucket.
        if let issuer { return kind.rawValue + ":" + issuer + " " + subject }
        return kind.rawValue + ":" + subject
    }

    /// `admin` grants every scope.
    package func grants(_ scope: String) -> Bool {
        self.scopes.contains("admin") || self.scopes.contains(scope)
    }

    /// The first of `required` this principal lacks, or nil if it holds them all.
    package func missingScope(of required: [String]) -> String? {
        required.first { !self.grants($0) }
    }
}

/// The scopes of the DB Audit API.
package enum Scopes {
    package static let all: [String] = [
        "read:databases", "write:databases", "read:policies", "write:policies", "read:alerts",
        "write:alerts", "read:logs", "read:reports", "admin",
    ]
}
