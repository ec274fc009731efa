package import GatewayAuth
package import GatewayConfig
import GatewayCore

/// What an ID token's verified claims make of a user: the e-mail address (verified, in an
/// allowed domain) and the gateway scopes the provider's rules grant, recomputed at every
/// sign-in so a group removed at the provider removes its scopes. Pure; any thread.
package enum SSOClaimMapping {
    package struct Mapped: Sendable, Equatable {
        package var subject: String
        package var email: String
        package var scopes: [String]

        package init(subject: String, email: String, scopes: [String]) {
            self.subject = subject
            self.email = email
            self.scopes = scopes
        }
    }

    package enum Refusal: Error, Equatable {
        case missingEmail
        case emailNotVerified
        case domainNotAllowed(String)
        case noScopes
    }

    package static func map(claims: JSONObject, provider: SSOProviderSettings) -> Result<Mapped, Refusal> {
        guard case .string(let subject)? = claims["sub"] else { return .failure(.missingEmail) }
        guard case .string(let rawEmail)? = claims[provider.emailClaim], let email = Self.normalisedEmail(rawEmail)
        else {
            return .failure(.missingEmail)
        }
        if provider.requireEmailVerified {
            // Some providers send the flag as a string.
            switch claims["email_verified"] {
            case .bool(true)?, .string("true")?: break
            default: return .failure(.emailNotVerified)
            }
        }
        let domain = String(email[email.index(after: email.lastIndex(of: "@")!)...])
        if !provider.allowedDomains.isEmpty, !provider.allowedDomains.contains(domain) {
            return .failure(.domainNotAllowed(domain))
        }
        var granted = Set(provider.defaultScopes)
        for rule in provider.scopeRules where Self.claim(claims[rule.claim], holds: rule.value) {
            granted.formUnion(rule.scopes)
        }
        // The catalogue's order, known scopes only.
        let scopes = Scopes.all.filter { granted.contains($0) }
        guard !scopes.isEmpty else { return .failure(.noScopes) }
        return .success(Mapped(subject: subject, email: email, scopes: scopes))
    }

    /// A string claim equal to `value`, or a list claim with an element equal to it (groups,
    /// roles); compared byte for byte.
    static func claim(_ value: JSONValue?, holds expected: String) -> Bool {
        switch value {
        case .string(let text)?: return text.utf8.elementsEqual(expected.utf8)
        case .array(let list)?: return list.contains { $0.string.map { $0.utf8.elementsEqual(expected.utf8) } ?? false }
        default: return false
        }
    }

    /// Lower-cased `local@domain` with one `@`, printable ASCII, at most 254 bytes.
    static func normalisedEmail(_ text: String) -> String? {
        // ASCII before lower-casing: Unicode case mapping turns look-alikes into ASCII (the
        // Kelvin sign U+212A becomes "k"), which would pass another domain for an allowed one.
        guard text.utf8.allSatisfy({ $0 < 0x80 }) else { return nil }
        let email = text.lowercased()
        guard (3...254).contains(email.utf8.count),
            email.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") })
        else {
            return nil
        }
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), !parts[1].hasPrefix("."),
            !parts[1].hasSuffix(".")
        else { return nil }
        return email
    }
}
