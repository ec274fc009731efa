package import GatewayCore
package import GatewayCrypto
import GatewayStore

/// What the gateway demands of one issuer's tokens. Immutable; any thread.
package struct IssuerPolicy: Sendable {
    /// The exact `iss` value.
    package var issuer: String
    /// `aud` must contain one of these; empty = not checked (external issuers only; the
    /// configuration warns about it).
    package var audiences: [String]
    /// Required header `typ` (RFC 9068 `at+jwt`), compared case-insensitively with an
    /// optional `application/` prefix; nil = not checked.
    package var requiredType: String?
    /// Allowance for clock skew on `exp`, `nbf` and `iat`, seconds.
    package var leewaySeconds: Int64
    /// Longest accepted `exp - iat` (or `exp - now` without `iat`), seconds.
    package var maxLifetimeSeconds: Int64?
    /// Our own issuer (login tokens).
    package var isOwn: Bool
    /// Further restricts the keys' pinned algorithms (config `algorithms`); nil = any.
    package var allowedAlgorithms: Set<SignatureAlgorithm>?
    /// `sub` must be present (RFC 9068). Off only for issuers whose machine tokens carry
    /// none: the principal is then the `client_id`, or the issuer itself.
    package var requiresSubject: Bool = true

    package init(
        issuer: String,
        audiences: [String],
        requiredType: String? = nil,
        leewaySeconds: Int64 = 60,
        maxLifetimeSeconds: Int64? = nil,
        isOwn: Bool = false
    ) {
        self.issuer = issuer
        self.audiences = audiences
        self.requiredType = requiredType
        self.leewaySeconds = leewaySeconds
        self.maxLifetimeSeconds = maxLifetimeSeconds
        self.isOwn = isOwn
    }
}

/// A token whose signature and claims were checked. Immutable; any thread.
package struct VerifiedToken: Sendable {
    package var principal: Principal
    package var expiresAt: Int64
    package var tokenID: String?
    package var issuer: String
    /// The `kid` of the key that verified it (nil for a key without one).
    package var keyID: String? = nil
    /// `sid` of a token of our own issuer: the session (refresh family) it was issued
    /// under. Never read from another issuer's tokens (their `sid` means something else).
    package var sessionID: String? = nil
    /// `iat`, when present.
    package var issuedAt: Int64? = nil
    /// Issued by this gateway (its session and user revocations apply).
    package var isOwn: Bool = false
}

/// The registered claims of a JWT access token, checked against an `IssuerPolicy` at a
/// given time (Unix seconds, injected). Pure; any thread.
package enum JWTClaimsValidator {
    package static func validate(
        claims: JSONObject,
        type: String?,
        policy: IssuerPolicy,
        now: Int64,
        trace: DecisionTrace? = nil
    ) throws(JWTFailure) -> VerifiedToken {
        guard let iss = claims["iss"]?.string, iss.utf8.elementsEqual(policy.issuer.utf8) else { throw .unknownIssuer }
        trace?.pass("jwt.claim.iss", "iss=\(iss): a trusted issuer")
        if let requiredType = policy.requiredType {
            guard let type, Self.typeMatches(type, requiredType) else {
                trace?.fail("jwt.header.typ", "typ=\(type ?? "(none)"); rule: must be \(requiredType)")
                throw .wrongType
            }
            trace?.pass("jwt.header.typ", "typ=\(type); rule: must be \(requiredType)")
        }
        guard let expValue = claims["exp"] else {
            trace?.fail("jwt.claim.exp", "absent; rule: required")
            throw .missingClaim("exp")
        }
        guard let exp = expValue.numericDate else {
            trace?.fail("jwt.claim.exp", "not a number")
            throw .malformed("exp is not a number")
        }
        let leeway = policy.leewaySeconds
        // Saturating: a token with exp near Int64.max must not wrap into "expired".
        let (expiresWithLeeway, overflow) = exp.addingReportingOverflow(leeway)
        guard overflow || now < expiresWithLeeway else {
            trace?.fail("jwt.claim.exp", "exp=\(exp); rule: now (\(now)) < exp + leeway (\(leeway)s)")
            throw .expired
        }
        trace?.pass("jwt.claim.exp", "exp=\(exp); rule: now (\(now)) < exp + leeway (\(leeway)s)")
        if let nbfValue = claims["nbf"] {
            guard let nbf = nbfValue.numericDate else {
                trace?.fail("jwt.claim.nbf", "not a number")
                throw .malformed("nbf is not a number")
            }
            guard nbf <= now.addingReportingOverflow(leeway).partialValue else {
                trace?.fail("jwt.claim.nbf", "nbf=\(nbf); rule: nbf <= now (\(now)) + leeway (\(leeway)s)")
                throw .notYetValid
            }
            trace?.pass("jwt.claim.nbf", "nbf=\(nbf); rule: nbf <= now (\(now)) + leeway (\(leeway)s)")
        }
        var iat: Int64?
        if let iatValue = claims["iat"] {
            guard let value = iatValue.numericDate else {
                trace?.fail("jwt.claim.iat", "not a number")
                throw .malformed("iat is not a number")
            }
            guard value <= now.addingReportingOverflow(leeway).partialValue else {
                trace?.fail("jwt.claim.iat", "iat=\(value); rule: iat <= now (\(now)) + leeway (\(leeway)s)")
                throw .issuedInFuture
            }
            trace?.pass("jwt.claim.iat", "iat=\(value); rule: iat <= now (\(now)) + leeway (\(leeway)s)")
            iat = value
        }
        if let maxLifetime = policy.maxLifetimeSeconds {
            // A wrapped subtraction (iat = Int64.min) is an absurd lifetime, not a short one.
            let (lifetime, overflow) = exp.subtractingReportingOverflow(iat ?? now)
            guard !overflow, lifetime <= maxLifetime else {
                trace?.fail(
                    "jwt.lifetime",
                    "exp - \(iat == nil ? "now" : "iat") = \(lifetime)s; rule: at most \(maxLifetime)s"
                )
                throw .lifetimeTooLong
            }
            trace?.pass(
                "jwt.lifetime",
                "exp - \(iat == nil ? "now" : "iat") = \(lifetime)s; rule: at most \(maxLifetime)s"
            )
        }
        if !policy.audiences.isEmpty {
            let audiences: [String]
            switch claims["aud"] {
            case .string(let single)?: audiences = [single]
            case .array(let list)?:
                let strings = list.compactMap(\.string)
                guard strings.count == list.count else {
                    trace?.fail("jwt.claim.aud", "not a list of strings")
                    throw .malformed("aud is not a list of strings")
                }
                audiences = strings
            case nil:
                trace?.fail(
                    "jwt.claim.aud",
                    "absent; rule: must contain one of \(policy.audiences.joined(separator: ", "))"
                )
                throw .missingClaim("aud")
            default:
                trace?.fail("jwt.claim.aud", "not a string or a list")
                throw .malformed("aud is not a string or a list")
            }
            // StringOrURI values compare code point by code point, never after normalisation.
            guard
                audiences.contains(where: { audience in
                    policy.audiences.contains { $0.utf8.elementsEqual(audience.utf8) }
                })
            else {
                trace?.fail(
                    "jwt.claim.aud",
                    "aud=\(audiences.joined(separator: ", ")); rule: must contain one of \(policy.audiences.joined(separator: ", "))"
                )
                throw .wrongAudience
            }
            trace?.pass(
                "jwt.claim.aud",
                "aud=\(audiences.joined(separator: ", ")); rule: must contain one of \(policy.audiences.joined(separator: ", "))"
            )
        } else {
            trace?.info("jwt.claim.aud", "not checked: this issuer has no audience configured")
        }
        let subject: String
        switch claims["sub"] {
        case .string(let value)? where !value.isEmpty && value.utf8.count <= 256:
            subject = value
            trace?.pass("jwt.claim.sub", "sub=\(value)")
        case nil where !policy.requiresSubject:
            // The issuer stands for itself; a client_id is named as such so that it cannot
            // pass for a user id of the same issuer.
            subject = claims["client_id"]?.string.map { "client:" + $0 } ?? policy.issuer
            trace?.info("jwt.claim.sub", "absent and not required for this issuer: the principal is \(subject)")
        default:
            trace?.fail("jwt.claim.sub", "absent, empty or longer than 256 bytes; rule: required")
            throw .missingClaim("sub")
        }
        // Every value must be a scope token: anything else (a tab, a space inside an `scp`
        // element, a comma, a quote) refuses the whole token rather than being dropped, since
        // an issuer sending it is misconfigured or hostile, and nothing of it may go upstream.
        var scopes: [String] = []
        switch claims["scope"] {
        case .string(let text)?:
            guard let parsed = ScopeToken.parseList(text) else {
                throw .malformed("scope holds a value that is not a scope token")
            }
            scopes = parsed
        case nil: break
        default: throw .malformed("scope is not a string")
        }
        switch claims["scp"] {
        case .array(let list)?:
            let strings = list.compactMap(\.string)
            guard strings.count == list.count else { throw .malformed("scp is not a list of strings") }
            guard ScopeToken.areValid(strings) else { throw .malformed("scp holds a value that is not a scope token") }
            scopes += strings
        case .string(let text)?:
            guard let parsed = ScopeToken.parseList(text) else {
                throw .malformed("scp holds a value that is not a scope token")
            }
            scopes += parsed
        case nil: break
        default: throw .malformed("scp is not a list")
        }
        guard scopes.count <= 64 else { throw .malformed("too many scopes") }
        var clientID: String?
        if let value = claims["client_id"] {
            guard let text = value.string, text.utf8.count <= 256 else { throw .malformed("client_id is not a string") }
            clientID = text
        }
        var tokenID: String?
        if let value = claims["jti"] {
            guard let text = value.string, !text.isEmpty, text.utf8.count <= 128 else {
                throw .malformed("jti is not a short string")
            }
            tokenID = text
        }
        var sessionID: String?
        if policy.isOwn, let value = claims["sid"] {
            guard let text = value.string, RevocationMessage.isOpaqueID(Substring(text)) else {
                throw .malformed("sid is not a session id")
            }
            sessionID = text
        }
        // Our own token minted for an OAuth client (the token endpoint writes `client_id`)
        // is an OAuth credential: the upstream learns the client, and its rate limit is the
        // client's. Login tokens carry no `client_id`; an external issuer's stay JWTs.
        let kind: Principal.CredentialKind = policy.isOwn && clientID?.isEmpty == false ? .oauth : .jwt
        if let trace {
            trace.pass("jwt.claim.scope", "scopes: \(scopes.isEmpty ? "(none)" : scopes.joined(separator: " "))")
            if let clientID {
                trace.info(
                    "jwt.claim.client_id",
                    "client_id=\(clientID)\(kind == .oauth ? ": an OAuth access token of this gateway" : "")"
                )
            }
            if let tokenID { trace.info("jwt.claim.jti", "jti=\(tokenID)") }
            if let sessionID { trace.info("jwt.claim.sid", "sid=\(sessionID)") }
        }
        var principal = Principal(
            subject: subject,
            kind: kind,
            scopes: scopes,
            clientID: clientID,
            keyID: nil,
            expiresAt: exp
        )
        principal.issuer = policy.issuer
        return VerifiedToken(
            principal: principal,
            expiresAt: exp,
            tokenID: tokenID,
            issuer: policy.issuer,
            sessionID: sessionID,
            issuedAt: iat,
            isOwn: policy.isOwn
        )
    }

    static func typeMatches(_ type: String, _ required: String) -> Bool {
        var lowered = type.lowercased()
        if lowered.hasPrefix("application/") { lowered.removeFirst("application/".count) }
        return lowered == required.lowercased()
    }
}
