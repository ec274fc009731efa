package import GatewayCrypto

/// A symmetric JWS secret (`kty: oct`, HS256/384/512). Only ever built from the operator's
/// own configuration, never from a fetched JWKS. Immutable; any thread.
package final class SymmetricSecret: Sendable {
    let bytes: [UInt8]
    package init(_ bytes: [UInt8]) { self.bytes = bytes }
}

/// One key that may verify JWS signatures, its algorithm pinned (by the JWK's `alg`, or its
/// `kty`/`crv`, or the configuration), so a token can never choose how it is checked.
/// Immutable; any thread.
package struct VerificationKey: Sendable {
    package enum Material: Sendable {
        case asymmetric(AsymmetricKey)
        case symmetric(SymmetricSecret)
    }

    package let keyID: String?
    package let algorithm: SignatureAlgorithm
    package let material: Material

    package init(keyID: String?, algorithm: SignatureAlgorithm, material: Material) {
        self.keyID = keyID
        self.algorithm = algorithm
        self.material = material
    }

    /// Checks `signature` over `signingInput` with this key's pinned algorithm.
    package func verify(signingInput: some Collection<UInt8>, signature: [UInt8]) -> Bool {
        switch self.material {
        case .asymmetric(let key):
            return key.verify(self.algorithm, signature: signature, message: signingInput)
        case .symmetric(let secret):
            let expected = HMACFunction.authenticationCode(self.algorithm, key: secret.bytes, message: signingInput)
            return HMACSHA256.constantTimeEquals(expected, signature)
        }
    }
}

/// Why a JWK or a key set was refused. Never contains key material.
package struct JSONWebKeyError: Error, Equatable, CustomStringConvertible {
    package var description: String
    init(_ description: String) { self.description = description }
}

/// Parsing of JWKs (RFC 7517/7518/8037) into `VerificationKey`s, refusing anything weak or
/// ambiguous: wrong `use`/`key_ops`, an `alg` that does not fit the key, RSA under 2048
/// bits or with e < 3, EC points off the curve, unsupported curves, short or empty HMAC
/// secrets, symmetric keys where only public keys belong. Stateless; any thread.
package enum JSONWebKey {
    private static let privateMembers = ["d", "p", "q", "dp", "dq", "qi", "oth"]

    /// Parses one JWK object.
    /// - Parameter allowSymmetric: `oct` keys are accepted only from operator configuration.
    package static func parse(_ jwk: JSONObject, allowSymmetric: Bool) throws(JSONWebKeyError) -> VerificationKey {
        guard let kty = jwk["kty"]?.string else { throw JSONWebKeyError("missing kty") }
        let keyID: String?
        switch jwk["kid"] {
        case nil: keyID = nil
        case .string(let kid)?: keyID = kid
        default: throw JSONWebKeyError("kid is not a string")
        }
        if let use = jwk["use"] {
            guard use.string == "sig" else { throw JSONWebKeyError("key is not for signatures (use)") }
        }
        if let operations = jwk["key_ops"] {
            guard let list = operations.array, list.allSatisfy({ $0.string != nil }),
                list.contains(.string("verify"))
            else { throw JSONWebKeyError("key_ops does not allow verify") }
        }
        var pinned: SignatureAlgorithm?
        if let alg = jwk["alg"] {
            guard let name = alg.string, let algorithm = SignatureAlgorithm(rawValue: name) else {
                throw JSONWebKeyError("unsupported alg")
            }
            pinned = algorithm
        }
        func member(_ name: String) throws(JSONWebKeyError) -> [UInt8] {
            guard let text = jwk[name]?.string, let bytes = Base64URL.decode(text) else {
                throw JSONWebKeyError("\(kty) key member \(name) missing or not base64url")
            }
            return bytes
        }
        if kty != "oct", privateMembers.contains(where: { jwk[$0] != nil }) {
            throw JSONWebKeyError("private key material in a verification key")
        }
        do {
            switch kty {
            case "RSA":
                let algorithm = pinned ?? .rs256
                let key = try AsymmetricKey.rsaPublicKey(modulus: try member("n"), exponent: try member("e"))
                guard key.supports(algorithm) else {
                    throw JSONWebKeyError("alg \(algorithm.rawValue) does not fit an RSA key")
                }
                return VerificationKey(keyID: keyID, algorithm: algorithm, material: .asymmetric(key))
            case "EC":
                guard let curve = jwk["crv"]?.string else { throw JSONWebKeyError("EC key without crv") }
                let natural: SignatureAlgorithm
                switch curve {
                case "P-256": natural = .es256
                case "P-384": natural = .es384
                default: throw JSONWebKeyError("unsupported curve \(curve)")
                }
                let algorithm = pinned ?? natural
                guard algorithm == natural else {
                    throw JSONWebKeyError("alg \(algorithm.rawValue) does not fit curve \(curve)")
                }
                let key = try AsymmetricKey.ecPublicKey(curve: curve, x: try member("x"), y: try member("y"))
                return VerificationKey(keyID: keyID, algorithm: algorithm, material: .asymmetric(key))
            case "OKP":
                guard jwk["crv"]?.string == "Ed25519" else { throw JSONWebKeyError("unsupported OKP curve") }
                let algorithm = pinned ?? .edDSA
                guard algorithm == .edDSA else { throw JSONWebKeyError("alg does not fit an Ed25519 key") }
                let key = try AsymmetricKey.ed25519PublicKey(try member("x"))
                return VerificationKey(keyID: keyID, algorithm: algorithm, material: .asymmetric(key))
            case "oct":
                guard allowSymmetric else {
                    throw JSONWebKeyError("symmetric keys are accepted from configuration only")
                }
                guard let algorithm = pinned, algorithm.isSymmetric else {
                    throw JSONWebKeyError("symmetric key needs alg HS256, HS384 or HS512")
                }
                let secret = try member("k")
                guard secret.count >= algorithm.minimumSymmetricKeyBytes else {
                    throw JSONWebKeyError(
                        "\(algorithm.rawValue) secret shorter than \(algorithm.minimumSymmetricKeyBytes) bytes"
                    )
                }
                return VerificationKey(
                    keyID: keyID,
                    algorithm: algorithm,
                    material: .symmetric(SymmetricSecret(secret))
                )
            default:
                throw JSONWebKeyError("unsupported kty \(kty)")
            }
        } catch let error as JSONWebKeyError {
            throw error
        } catch {
            throw JSONWebKeyError(String(describing: error))
        }
    }
}

/// A set of verification keys (one issuer's JWKS, or configured keys) with what was refused
/// and why, for the log. Immutable; any thread.
package struct JSONWebKeySet: Sendable {
    package static let maxDocumentBytes = 256 * 1024
    package static let maxKeys = 64

    package let keys: [VerificationKey]
    /// One line per refused key, e.g. `kid "a": RSA modulus must be ...`.
    package let problems: [String]

    package init(keys: [VerificationKey], problems: [String] = []) {
        self.keys = keys
        self.problems = problems
    }

    package static let empty = JSONWebKeySet(keys: [])

    /// Parses `{"keys": [...]}`. Weak or malformed keys are left out and listed in
    /// `problems`; keys sharing a `kid` are all left out (which one is meant is ambiguous).
    /// With `allowSymmetric` (a file of the operator's), a set holding private asymmetric
    /// keys or mixing symmetric and asymmetric keys is refused whole.
    package static func parse(
        _ document: some Collection<UInt8>,
        allowSymmetric: Bool
    ) throws(JSONWebKeyError) -> JSONWebKeySet {
        guard document.count <= maxDocumentBytes else {
            throw JSONWebKeyError("JWKS larger than \(maxDocumentBytes) bytes")
        }
        let root: JSONObject
        do {
            root = try StrictJSON.parseObject(document)
        } catch {
            throw JSONWebKeyError("JWKS is not valid JSON: \(error.description)")
        }
        guard let list = root["keys"]?.array else { throw JSONWebKeyError("JWKS has no keys array") }
        guard list.count <= maxKeys else { throw JSONWebKeyError("JWKS has more than \(maxKeys) keys") }
        let objects = list.compactMap(\.object)
        guard objects.count == list.count else { throw JSONWebKeyError("JWKS keys must be objects") }
        if allowSymmetric {
            // The operator's own file: an ambiguous set is a configuration error, refused
            // whole so it is fixed rather than half-used.
            let privateMembers = ["d", "p", "q", "dp", "dq", "qi", "oth"]
            if objects.contains(where: {
                $0["kty"]?.string != "oct" && privateMembers.contains(where: $0.names.contains)
            }) {
                throw JSONWebKeyError("key set contains private asymmetric keys; publish only public keys")
            }
            let symmetricCount = objects.filter { $0["kty"]?.string == "oct" }.count
            if symmetricCount > 0, symmetricCount < objects.count {
                throw JSONWebKeyError("key set mixes symmetric and asymmetric keys; use one set per kind")
            }
        }
        // A provider's set: each odd key (symmetric, private, weak) is left out on its own
        // and logged, so one bad entry cannot take the provider's good keys down with it.
        var kidCounts: [String: Int] = [:]
        for object in objects {
            if let kid = object["kid"]?.string { kidCounts[kid, default: 0] += 1 }
        }
        var keys: [VerificationKey] = []
        var problems: [String] = []
        for (index, object) in objects.enumerated() {
            let label = object["kid"]?.string.map { "kid \"\($0.prefix(64))\"" } ?? "key #\(index)"
            if let kid = object["kid"]?.string, kidCounts[kid, default: 0] > 1 {
                problems.append("\(label): kid used by more than one key")
                continue
            }
            do {
                keys.append(try JSONWebKey.parse(object, allowSymmetric: allowSymmetric))
            } catch {
                problems.append("\(label): \(error.description)")
            }
        }
        return JSONWebKeySet(keys: keys, problems: problems)
    }

    /// Keys that may check a token with header `kid`/`alg`: with a `kid`, only that key
    /// (and only if its pinned algorithm is `algorithm`); without, every key pinned to it.
    package func candidates(keyID: String?, algorithm: SignatureAlgorithm) -> [VerificationKey] {
        if let keyID {
            return keys.filter { $0.keyID == keyID && $0.algorithm == algorithm }
        }
        return keys.filter { $0.algorithm == algorithm }
    }

    package func contains(keyID: String) -> Bool {
        keys.contains { $0.keyID == keyID }
    }

    /// A set holding both sets' keys; on a `kid` clash the receiver's key wins.
    package func merging(_ other: JSONWebKeySet) -> JSONWebKeySet {
        let own = Set(keys.compactMap(\.keyID))
        return JSONWebKeySet(
            keys: keys + other.keys.filter { $0.keyID.map { !own.contains($0) } ?? true },
            problems: problems + other.problems
        )
    }
}
