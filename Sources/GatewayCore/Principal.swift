/// Who is calling, whatever credential proved it: scopes and rate limits
/// apply to the principal, never to the credential kind. Immutable; any thread.
package struct Principal: Sendable, Hashable {
    /// The credential kind, as sent upstream in `X-DBAudit-Credential`.
    package enum CredentialKind: String, Sendable, Hashable {
        case apiKey = "api_key"
        case jwt
        case oauth
    }

    /// The properties of a principal as set.
    private struct Fields: Sendable, Hashable {
        var subject: String
        var kind: CredentialKind
        var scopes: [String]
        var clientID: String?
        var keyID: String?
        var expiresAt: Int64?
        var rateLimit: String?
        var issuer: String?
        var issuedElsewhere = false
    }

    /// A principal's properties and what the request path derives from them, built once
    /// when the principal is made (a cached principal serves many requests) and shared by
    /// its copies: a copy is one reference, not one per string. Immutable; any thread.
    private final class Storage: Sendable {
        let fields: Fields
        let identityHeaders: IdentityHeaders
        let rateLimitKey: String

        init(_ fields: Fields) {
            self.fields = fields
            self.identityHeaders = IdentityHeaders(
                subject: fields.subject,
                kind: fields.kind,
                scopes: fields.scopes,
                clientID: fields.clientID,
                keyID: fields.keyID,
                issuer: fields.issuer
            )
            self.rateLimitKey = Principal.rateLimitKey(
                kind: fields.kind,
                subject: fields.subject,
                clientID: fields.clientID,
                keyID: fields.keyID,
                issuer: fields.issuer,
                issuedElsewhere: fields.issuedElsewhere
            )
        }
    }

    private var storage: Storage

    // Setting a property makes new storage and derives again: it happens only while a
    // principal is made (the authenticators set the issuer after `init`).
    package var subject: String {
        get { self.storage.fields.subject }
        set { self.update { $0.subject = newValue } }
    }
    package var kind: CredentialKind {
        get { self.storage.fields.kind }
        set { self.update { $0.kind = newValue } }
    }
    package var scopes: [String] {
        get { self.storage.fields.scopes }
        set { self.update { $0.scopes = newValue } }
    }
    package var clientID: String? {
        get { self.storage.fields.clientID }
        set { self.update { $0.clientID = newValue } }
    }
    package var keyID: String? {
        get { self.storage.fields.keyID }
        set { self.update { $0.keyID = newValue } }
    }
    /// Unix seconds, if the credential expires.
    package var expiresAt: Int64? {
        get { self.storage.fields.expiresAt }
        set { self.update { $0.expiresAt = newValue } }
    }
    /// A `[[rate_limits]]` policy named by the credential itself (an API key's tier).
    package var rateLimit: String? {
        get { self.storage.fields.rateLimit }
        set { self.update { $0.rateLimit = newValue } }
    }
    /// The `iss` of a JWT principal (our own issuer or a trusted external one).
    package var issuer: String? {
        get { self.storage.fields.issuer }
        set { self.update { $0.issuer = newValue } }
    }
    /// A token of another authorization server (introspected): its client ids are that
    /// server's, so its buckets are kept apart from those of our own clients.
    package var issuedElsewhere: Bool {
        get { self.storage.fields.issuedElsewhere }
        set { self.update { $0.issuedElsewhere = newValue } }
    }
    /// The identity fields the upstream gets, built once from the properties above.
    package var identityHeaders: IdentityHeaders { self.storage.identityHeaders }
    /// The token-bucket key of this principal: the key id of an API key, the client id of
    /// an OAuth client, else the kind and subject.
    package var rateLimitKey: String { self.storage.rateLimitKey }

    package init(
        subject: String,
        kind: CredentialKind,
        scopes: [String],
        clientID: String? = nil,
        keyID: String? = nil,
        expiresAt: Int64? = nil,
        rateLimit: String? = nil
    ) {
        self.storage = Storage(
            Fields(
                subject: subject,
                kind: kind,
                scopes: scopes,
                clientID: clientID,
                keyID: keyID,
                expiresAt: expiresAt,
                rateLimit: rateLimit
            )
        )
    }

    private mutating func update(_ change: (inout Fields) -> Void) {
        var fields = self.storage.fields
        change(&fields)
        self.storage = Storage(fields)
    }

    package static func == (lhs: Principal, rhs: Principal) -> Bool {
        lhs.storage === rhs.storage || lhs.storage.fields == rhs.storage.fields
    }

    package func hash(into hasher: inout Hasher) {
        hasher.combine(self.storage.fields)
    }

    fileprivate static func rateLimitKey(
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
