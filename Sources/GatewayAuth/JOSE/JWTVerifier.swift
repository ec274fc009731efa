import GatewayCore

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
    package func verify(_ token: String, now: Int64) -> Result {
        let jws: JWSCompact
        let claims: JSONObject
        do {
            jws = try JWSCompact.parse(token.utf8)
            claims = try StrictJSON.parseObject(jws.payload, maxDepth: 8)
        } catch let failure as JWTFailure {
            return .failed(failure)
        } catch {
            return .failed(.malformed("claims are not a JSON object"))
        }
        // Swift's String equality (and so the dictionary) treats canonically equivalent
        // strings as equal; issuers must match byte for byte.
        guard let issuer = claims["iss"]?.string, let policy = self.policies[issuer], policy.issuer.utf8.elementsEqual(issuer.utf8) else {
            return .failed(.unknownIssuer)
        }
        if let allowed = policy.allowedAlgorithms, !allowed.contains(jws.algorithm) {
            return .failed(.unsupportedAlgorithm)
        }
        let keySet = self.keySets[issuer] ?? .empty
        let candidates = keySet.candidates(keyID: jws.keyID, algorithm: jws.algorithm)
        if candidates.isEmpty {
            if let kid = jws.keyID, keySet.contains(keyID: kid) {
                // The key exists but is pinned to another algorithm: alg confusion attempt.
                return .failed(.unsupportedAlgorithm)
            }
            if jws.algorithm.isSymmetric, !keySet.keys.contains(where: { $0.algorithm.isSymmetric }) {
                return .failed(.unsupportedAlgorithm)
            }
            return .unknownKey(issuer: issuer, keyID: jws.keyID)
        }
        guard let key = jws.verifyingKey(among: candidates) else { return .failed(.badSignature) }
        do {
            var verified = try JWTClaimsValidator.validate(claims: claims, type: jws.type, policy: policy, now: now)
            verified.keyID = key.keyID
            return .verified(verified)
        } catch {
            return .failed(error)
        }
    }
}
