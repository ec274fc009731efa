package import GatewayCrypto

/// Why a token was refused. `description` is one sentence for `error_description` (it
/// never echoes token contents beyond short, sanitised names).
package enum JWTFailure: Error, Equatable, CustomStringConvertible {
    case malformed(String)
    case unsupportedAlgorithm
    case unknownIssuer
    case unknownKey
    case badSignature
    case expired
    case notYetValid
    case issuedInFuture
    case wrongAudience
    case wrongType
    case lifetimeTooLong
    case missingClaim(String)
    case revoked
    /// Its session (`sid`) was ended: logout or a reused refresh token.
    case sessionRevoked
    /// Its user's tokens were revoked (`users disable`).
    case userRevoked

    package var description: String {
        switch self {
        case .malformed(let why): "The token is malformed: \(why)."
        case .unsupportedAlgorithm: "The token's algorithm is not accepted for its key."
        case .unknownIssuer: "The token's issuer is not trusted."
        case .unknownKey: "The token was signed with a key this gateway does not know."
        case .badSignature: "The token's signature is invalid."
        case .expired: "The token has expired."
        case .notYetValid: "The token is not valid yet."
        case .issuedInFuture: "The token was issued in the future."
        case .wrongAudience: "The token was not issued for this API (audience)."
        case .wrongType: "The token is not an access token."
        case .lifetimeTooLong: "The token's lifetime exceeds what this gateway accepts."
        case .missingClaim(let claim): "The token lacks the \(claim) claim."
        case .revoked: "The token has been revoked."
        case .sessionRevoked: "The token has been revoked: its session was ended (logout or a reused refresh token)."
        case .userRevoked: "The token has been revoked with every token of its user."
        }
    }
}

/// A JWS in compact serialisation (RFC 7515 §7.1), decoded but not verified: header and
/// payload parsed with `StrictJSON`, segments strict base64url, sizes bounded, `alg: none`
/// and any `crit` refused at parse time. `jku`, `x5u`, `jwk` and `x5c` are never read,
/// so a token cannot point at its own key. Immutable value; any thread.
package struct JWSCompact: Sendable {
    package static let maxTokenBytes = 16 * 1024
    package static let maxHeaderBytes = 2048

    package let header: JSONObject
    package let algorithm: SignatureAlgorithm
    package let keyID: String?
    package let type: String?
    package let payload: [UInt8]
    package let signingInput: [UInt8]
    package let signature: [UInt8]

    package static func parse(_ token: some Collection<UInt8>) throws(JWTFailure) -> JWSCompact {
        guard token.count <= maxTokenBytes else { throw .malformed("longer than \(maxTokenBytes) bytes") }
        let bytes = Array(token)
        guard let firstDot = bytes.firstIndex(of: UInt8(ascii: ".")),
            let secondDot = bytes[(firstDot + 1)...].firstIndex(of: UInt8(ascii: ".")),
            !bytes[(secondDot + 1)...].contains(UInt8(ascii: "."))
        else { throw .malformed("not three dot-separated parts") }
        let headerPart = bytes[..<firstDot]
        let payloadPart = bytes[(firstDot + 1)..<secondDot]
        let signaturePart = bytes[(secondDot + 1)...]
        guard headerPart.count <= maxHeaderBytes * 4 / 3 + 4 else { throw .malformed("header too large") }
        guard let headerBytes = Base64URL.decode(headerPart) else { throw .malformed("header is not base64url") }
        guard let payload = Base64URL.decode(payloadPart) else { throw .malformed("payload is not base64url") }
        guard let signature = Base64URL.decode(signaturePart) else { throw .malformed("signature is not base64url") }
        let header: JSONObject
        do {
            header = try StrictJSON.parseObject(headerBytes, maxDepth: 4)
        } catch {
            throw .malformed("header is not a JSON object")
        }
        guard let alg = header["alg"]?.string else { throw .malformed("header has no alg") }
        guard let algorithm = SignatureAlgorithm(rawValue: alg) else { throw .unsupportedAlgorithm }
        guard header["crit"] == nil else { throw .malformed("critical header extensions are not supported") }
        var keyID: String?
        if let kid = header["kid"] {
            guard let text = kid.string, text.utf8.count <= 256 else { throw .malformed("kid is not a short string") }
            keyID = text
        }
        var type: String?
        if let typ = header["typ"] {
            guard let text = typ.string else { throw .malformed("typ is not a string") }
            type = text
        }
        return JWSCompact(
            header: header,
            algorithm: algorithm,
            keyID: keyID,
            type: type,
            payload: payload,
            signingInput: Array(bytes[..<secondDot]),
            signature: signature
        )
    }

    /// Whether one of `keys` (already narrowed by `kid` and pinned algorithm) verifies it.
    package func verify(with keys: [VerificationKey]) -> Bool {
        self.verifyingKey(among: keys) != nil
    }

    /// The key among `keys` that verifies it, if any.
    package func verifyingKey(among keys: [VerificationKey]) -> VerificationKey? {
        for key in keys where key.algorithm == self.algorithm {
            if key.verify(signingInput: self.signingInput, signature: self.signature) { return key }
        }
        return nil
    }
}
