/// `[sso]` with its `[[sso.providers]]`: the OpenID Connect providers users may sign in
/// with on the gateway's sign-in pages, and whether the password form stays. Immutable
/// snapshot; any thread.
package struct SSOSettings: Sendable, Hashable {
    /// `password_login`: false hides the password form and refuses posted passwords on the
    /// sign-in pages (users then sign in only through a provider).
    package var passwordLogin: Bool = true
    package var providers: [SSOProviderSettings] = []

    package init() {}

    package func provider(named name: String) -> SSOProviderSettings? {
        self.providers.first { $0.name == name }
    }
}

/// One `[[sso.providers.scope_rules]]`: a user whose ID token's `claim` holds `value`
/// (equal to it, or one element of it when the claim is a list) gets `scopes`.
package struct SSOScopeRule: Sendable, Hashable {
    package var claim: String
    package var value: String
    package var scopes: [String]

    package init(claim: String, value: String, scopes: [String]) {
        self.claim = claim
        self.value = value
        self.scopes = scopes
    }
}

/// One `[[sso.providers]]`: an OpenID Connect provider the gateway is a relying party of.
/// Immutable; any thread.
package struct SSOProviderSettings: Sendable, Hashable {
    /// Lower-case id used in URLs and in the user key (`[a-z0-9-]{1,32}`).
    package var name: String
    package var displayName: String
    /// The provider's issuer identifier: `iss` of its ID tokens, and the base of
    /// `/.well-known/openid-configuration`.
    package var issuer: String
    package var caFile: String?
    package var clientID: String
    package var clientSecret: Secret
    package var scopes: [String] = ["openid", "email", "profile"]
    /// E-mail domains accepted (lower case); empty = any.
    package var allowedDomains: [String] = []
    /// The claim holding the e-mail address.
    package var emailClaim: String = "email"
    /// `email_verified` must be true (default). Off only for providers that verify
    /// addresses themselves and do not send the claim.
    package var requireEmailVerified: Bool = true
    package var scopeRules: [SSOScopeRule] = []
    package var defaultScopes: [String] = []
    /// Signature algorithms accepted for ID tokens.
    package var algorithms: [String] = ["RS256"]
    /// Whole exchange with the provider (discovery, token endpoint), each.
    package var timeout: Duration = .seconds(5)

    package init(name: String, displayName: String, issuer: String, clientID: String, clientSecret: Secret) {
        self.name = name
        self.displayName = displayName
        self.issuer = issuer
        self.clientID = clientID
        self.clientSecret = clientSecret
    }

    /// OIDC Discovery §4: the issuer with `/.well-known/openid-configuration` appended.
    package var discoveryURL: String {
        (self.issuer.hasSuffix("/") ? String(self.issuer.dropLast()) : self.issuer)
            + "/.well-known/openid-configuration"
    }

    /// Whether `name` can be a provider name: it appears in URLs and user keys.
    package static func isValidName(_ name: String) -> Bool {
        (1...32).contains(name.utf8.count) && name.first != "-" && name.last != "-"
            && name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
    }

    /// Claim names read from ID tokens: short and printable.
    package static func isValidClaimName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count) && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }
}
