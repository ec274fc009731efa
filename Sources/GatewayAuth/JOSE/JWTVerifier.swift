package import GatewayCore

/// Verifies JWT access tokens against the configured issuers and each issuer's current key
/// set. One per event loop, touched only on that loop: key sets are replaced by
/// `replaceKeys` when the process-wide JWKS refresher pushes a new set to every loop, so
/// the request path reads them without a lock.
package final class JWTVerifier {
    package enum Result {
        case verified(VerifiedToken)
        case failed(JWTFailure)
        /// Signature check needs a key we do not have: the issuer's JWKS may have rotated.
        case unknownKey(issuer: String, keyID: String?)
    }

    private var policies: [String: IssuerPolicy]
    private var keySets: [String: JSONWebKeySet]

    package init(policies: [IssuerPolicy], keySets: [String: JSONWebKeySet]) {
        self.policies = Dictionary(policies.map { ($0.issuer, $0) }, uniquingKeysWith: { first, _ in first })
        self.keySets = keySets
    }

    package func replaceKeys(issuer: String, keys: JSONWebKeySet) {
        self.keySets[issuer] = keys
    }

    package func keys(issuer: String) -> JSONWebKeySet? { self.keySets[issuer] }

    package var issuers: [String] { Array(self.policies.keys) }

    /// Whether a bearer token looks like a JWS (three base64url parts) at all.
    package static func looksLikeJWT(_ token: String) -> Bool {
        var dots = 0
        for byte in token.utf8 where byte == UInt8(ascii: ".") { dots += 1 }
        return dots == 2
    }

    /// Parses, finds the issuer and key, verifies the signature, then the claims at `now`.
    /// - Parameter trace: records each check (explain); nil on the request path.
    package func verify(_ token: String, now: Int64, trace: DecisionTrace? = nil) -> Result {
        let jws: JWSCompact
        let claims: JSONObject
        do {
            jws = try JWSCompact.parse(token.utf8)
            claims = try StrictJSON.parseObject(jws.payload, maxDepth: 8)
        } catch let failure as JWTFailure {
            trace?.fail("jwt.header", failure.description)
            return .failed(failure)
        } catch {
            trace?.fail("jwt.header", "the claims are not a JSON object")
            return .failed(.malformed("claims are not a JSON object"))
        }
        trace?.pass(
            "jwt.header",
            "alg=\(jws.algorithm.rawValue) kid=\(jws.keyID ?? "(none)") typ=\(jws.type ?? "(none)")"
        )
        // Swift's String equality (and so the dictionary) treats canonically equivalent
        // strings as equal; issuers must match byte for byte.
        guard let issuer = claims["iss"]?.string, let policy = self.policies[issuer],
            policy.issuer.utf8.elementsEqual(issuer.utf8)
        else {
            trace?.fail(
                "jwt.claim.iss",
                "iss=\(claims["iss"]?.string ?? "(none)"); rule: one of \(self.policies.keys.sorted().joined(separator: ", "))"
            )
            return .failed(.unknownIssuer)
        }
        if let allowed = policy.allowedAlgorithms, !allowed.contains(jws.algorithm) {
            trace?.fail("jwt.algorithm", "\(jws.algorithm.rawValue) is not among the issuer's algorithms")
            return .failed(.unsupportedAlgorithm)
        }
        let keySet = self.keySets[issuer] ?? .empty
        let candidates = keySet.candidates(keyID: jws.keyID, algorithm: jws.algorithm)
        if candidates.isEmpty {
            if let kid = jws.keyID, keySet.contains(keyID: kid) {
                // The key exists but is pinned to another algorithm: alg confusion attempt.
                trace?.fail("jwt.key", "kid \(kid) is pinned to another algorithm than \(jws.algorithm.rawValue)")
                return .failed(.unsupportedAlgorithm)
            }
            if jws.algorithm.isSymmetric, !keySet.keys.contains(where: { $0.algorithm.isSymmetric }) {
                trace?.fail("jwt.key", "\(jws.algorithm.rawValue) but the issuer has no symmetric key")
                return .failed(.unsupportedAlgorithm)
            }
            return .unknownKey(issuer: issuer, keyID: jws.keyID)
        }
        guard let key = jws.verifyingKey(among: candidates) else {
            trace?.fail(
                "jwt.signature",
                "no key of \(issuer) matching kid \(jws.keyID ?? "(none)") verifies the signature (\(candidates.count) tried)"
            )
            return .failed(.badSignature)
        }
        trace?.pass(
            "jwt.signature",
            "verified with \(issuer) key kid=\(key.keyID ?? "(none)") (\(jws.algorithm.rawValue))"
        )
        do {
            var verified = try JWTClaimsValidator.validate(
                claims: claims,
                type: jws.type,
                policy: policy,
                now: now,
                trace: trace
            )
            verified.keyID = key.keyID
            return .verified(verified)
        } catch {
            if let trace, trace.failingStep == nil { trace.fail("jwt.claims", error.description) }
            return .failed(error)
        }
    }
}
