package import GatewayAuth
package import GatewayConfig

/// Verifies an OpenID Connect ID token (OIDC Core §3.1.3.7) with the provider's key set
/// (from the JWKS refresher): the signature with an allowed algorithm, `iss` exactly the
/// provider's, `aud` holding our `client_id`, `azp` our `client_id` when present (and
/// required when `aud` names several), `exp` and `iat` (within a leeway), `sub`, and the
/// `nonce` this browser's sign-in started with (compared in constant time). Pure; any thread.
package enum SSOIDTokenCheck {
    package enum Failure: Error, Equatable, CustomStringConvertible {
        /// Signed with a `kid` the key set lacks: the provider may have rotated keys.
        case unknownKey
        case invalid(String)

        package var description: String {
            switch self {
            case .unknownKey: "the ID token was signed with an unknown key"
            case .invalid(let why): why
            }
        }
    }

    package static let leewaySeconds: Int64 = 60
    /// ID tokens are short-lived; a longer one is refused.
    package static let maximumLifetimeSeconds: Int64 = 86400

    package static func verify(
        _ token: String,
        keys: JSONWebKeySet,
        provider: SSOProviderSettings,
        nonce: String,
        now: Int64
    ) -> Result<JSONObject, Failure> {
        let jws: JWSCompact
        let claims: JSONObject
        do {
            jws = try JWSCompact.parse(token.utf8)
            claims = try StrictJSON.parseObject(jws.payload, maxDepth: 8)
        } catch let failure as JWTFailure {
            return .failure(.invalid(failure.description))
        } catch {
            return .failure(.invalid("the ID token's claims are not a JSON object"))
        }
        guard provider.algorithms.contains(jws.algorithm.rawValue), !jws.algorithm.isSymmetric else {
            return .failure(.invalid("the ID token's algorithm \(jws.algorithm.rawValue) is not accepted"))
        }
        let candidates = keys.candidates(keyID: jws.keyID, algorithm: jws.algorithm)
        if candidates.isEmpty { return .failure(.unknownKey) }
        guard jws.verifyingKey(among: candidates) != nil else {
            return .failure(.invalid("the ID token's signature is invalid"))
        }
        let policy = IssuerPolicy(
            issuer: provider.issuer,
            audiences: [provider.clientID],
            leewaySeconds: leewaySeconds,
            maxLifetimeSeconds: maximumLifetimeSeconds
        )
        do {
            _ = try JWTClaimsValidator.validate(claims: claims, type: nil, policy: policy, now: now)
        } catch {
            return .failure(.invalid(error.description))
        }
        guard claims["iat"]?.numericDate != nil else { return .failure(.invalid("the ID token lacks iat")) }
        let audienceCount: Int
        switch claims["aud"] {
        case .array(let list)?: audienceCount = list.count
        default: audienceCount = 1
        }
        switch claims["azp"] {
        case .string(let azp)?:
            guard azp.utf8.elementsEqual(provider.clientID.utf8) else {
                return .failure(.invalid("the ID token was issued to another party (azp)"))
            }
        case nil:
            guard audienceCount == 1 else {
                return .failure(.invalid("the ID token names several audiences and no azp"))
            }
        default:
            return .failure(.invalid("the ID token's azp is not a string"))
        }
        guard case .string(let presented)? = claims["nonce"],
            CSRFCheck.matches(posted: presented, expected: nonce)
        else {
            return .failure(.invalid("the ID token's nonce is not the one of this sign-in"))
        }
        return .success(claims)
    }
}
