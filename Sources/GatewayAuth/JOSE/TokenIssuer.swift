package import GatewayConfig
import GatewayCore
package import GatewayCrypto

/// The gateway's own token issuer: its signing keys (one active, the others kept so the
/// tokens they signed keep verifying until they expire), access-token minting, and the
/// public JWKS document. Built once per configuration; immutable; any thread.
package final class TokenIssuer: Sendable {
    package struct SigningKey: Sendable {
        package let keyID: String
        package let algorithm: SignatureAlgorithm
        package let key: AsymmetricKey
    }

    package let issuer: String
    package let audience: String
    package let accessTokenTTL: Int64
    package let refreshTokenTTL: Int64
    package let keys: [SigningKey]
    package let active: SigningKey
    /// `{"keys":[...]}` with the public half of every key, current and previous.
    package let jwksDocument: String
    /// The same keys as a verification set, for our own tokens.
    package let verificationKeys: JSONWebKeySet

    package init(
        issuer: String,
        audience: String,
        accessTokenTTL: Int64,
        refreshTokenTTL: Int64,
        keys: [SigningKey],
        activeKeyID: String
    ) throws {
        guard let active = keys.first(where: { $0.keyID == activeKeyID }) else {
            throw CryptoKeyError("no active signing key")
        }
        self.issuer = issuer
        self.audience = audience
        self.accessTokenTTL = accessTokenTTL
        self.refreshTokenTTL = refreshTokenTTL
        self.keys = keys
        self.active = active
        self.jwksDocument = JSONObject(members: [("keys", .array(try keys.map(Self.publicJWK)))]).jsonText
        self.verificationKeys = JSONWebKeySet(
            keys: keys.map {
                VerificationKey(keyID: $0.keyID, algorithm: $0.algorithm, material: .asymmetric($0.key))
            }
        )
    }

    /// Loads every `[[auth.jwt.signing_keys]]` entry; nil when no issuer is configured.
    /// Throws with the entry's `kid` and what is wrong (never key material).
    package static func build(_ settings: JWTSettings) throws -> TokenIssuer? {
        guard let issuer = settings.issuer else { return nil }
        var keys: [SigningKey] = []
        for entry in settings.signingKeys {
            let key: AsymmetricKey
            do {
                key = try AsymmetricKey.privateKey(
                    pem: Array(entry.privateKeyPEM.value.utf8),
                    passphrase: entry.passphrase.map { Array($0.value.utf8) }
                )
            } catch {
                throw CryptoKeyError("signing key \"\(entry.keyID)\" (\(entry.privateKeyFile)): \(error)")
            }
            guard let algorithm = SignatureAlgorithm(rawValue: entry.algorithm.rawValue) else {
                throw CryptoKeyError(
                    "signing key \"\(entry.keyID)\" (\(entry.privateKeyFile)): \(entry.algorithm.rawValue) cannot sign tokens"
                )
            }
            guard key.supports(algorithm) else {
                throw CryptoKeyError(
                    "signing key \"\(entry.keyID)\" (\(entry.privateKeyFile)) is not a \(entry.algorithm.rawValue) key"
                )
            }
            keys.append(SigningKey(keyID: entry.keyID, algorithm: algorithm, key: key))
        }
        guard let active = settings.activeSigningKey else { throw CryptoKeyError("no active signing key") }
        return try TokenIssuer(
            issuer: issuer,
            audience: settings.audience,
            accessTokenTTL: Int64(settings.accessTokenTTL.components.seconds),
            refreshTokenTTL: Int64(settings.refreshTokenTTL.components.seconds),
            keys: keys,
            activeKeyID: active.keyID
        )
    }

    /// The policy our own access tokens are checked against (RFC 9068 `at+jwt`).
    package func policy(leewaySeconds: Int64, maxLifetimeSeconds: Int64) -> IssuerPolicy {
        IssuerPolicy(
            issuer: issuer,
            audiences: [audience],
            requiredType: "at+jwt",
            leewaySeconds: leewaySeconds,
            maxLifetimeSeconds: maxLifetimeSeconds,
            isOwn: true
        )
    }

    /// Scopes that are not all scope tokens: never signed (they come from user records and
    /// refresh grants in Redis, and a token carrying them would take them upstream).
    package struct InvalidScopes: Error, CustomStringConvertible {
        package var description: String { "the scopes to sign are not all scope tokens" }
    }

    /// A signed access token for `subject` with `scopes`, and its id and expiry.
    /// `sessionID`: the refresh family of a login session, written as `sid` so that ending
    /// the session (logout, refresh-token reuse) refuses every access token it issued. The
    /// family id grants nothing by itself: refreshing needs the refresh token, which the
    /// store keeps only hashed.
    package func accessToken(
        subject: String,
        scopes: [String],
        clientID: String? = nil,
        sessionID: String? = nil,
        now: Int64
    ) throws -> (token: String, tokenID: String, expiresAt: Int64) {
        guard ScopeToken.areValid(scopes) else { throw InvalidScopes() }
        let tokenID = Base64URL.encode(SecureRandom.bytes(16))
        let expiresAt = now + accessTokenTTL
        let header = JSONObject(members: [
            ("alg", .string(active.algorithm.rawValue)),
            ("kid", .string(active.keyID)),
            ("typ", .string("at+jwt")),
        ])
        var claims: [(name: String, value: JSONValue)] = [
            ("iss", .string(issuer)),
            ("sub", .string(subject)),
            ("aud", .string(audience)),
            ("iat", .integer(now)),
            ("nbf", .integer(now)),
            ("exp", .integer(expiresAt)),
            ("jti", .string(tokenID)),
            ("scope", .string(scopes.joined(separator: " "))),
        ]
        if let clientID {
            claims.append(("client_id", .string(clientID)))
        }
        if let sessionID {
            claims.append(("sid", .string(sessionID)))
        }
        let signingInput =
            Base64URL.encode(Array(header.jsonText.utf8)) + "."
            + Base64URL.encode(Array(JSONObject(members: claims).jsonText.utf8))
        let signature = try active.key.sign(active.algorithm, message: Array(signingInput.utf8))
        return (signingInput + "." + Base64URL.encode(signature), tokenID, expiresAt)
    }

    /// The public half of `key` as a JWK (RFC 7517), for the JWKS document.
    private static func publicJWK(_ key: SigningKey) throws -> JSONValue {
        let parameters = key.key.publicParameters
        func parameter(_ name: String) throws -> JSONValue {
            guard let bytes = parameters[name] else {
                throw CryptoKeyError("signing key \"\(key.keyID)\" has no public parameter \(name)")
            }
            return .string(Base64URL.encode(bytes))
        }
        var members: [(name: String, value: JSONValue)] = [
            ("kid", .string(key.keyID)),
            ("alg", .string(key.algorithm.rawValue)),
            ("use", .string("sig")),
        ]
        switch key.key.kind {
        case .rsa:
            members += [("kty", .string("RSA")), ("n", try parameter("n")), ("e", try parameter("e"))]
        case .ec(let curve):
            members += [
                ("kty", .string("EC")), ("crv", .string("\(curve)")), ("x", try parameter("x")),
                ("y", try parameter("y")),
            ]
        case .ed25519:
            members += [("kty", .string("OKP")), ("crv", .string("Ed25519")), ("x", try parameter("x"))]
        }
        return .object(JSONObject(members: members))
    }
}
