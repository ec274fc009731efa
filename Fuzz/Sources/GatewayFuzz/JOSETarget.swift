import GatewayAuth

/// JWS compact parsing with its strict JSON header, then the claims checks on the payload.
/// The segments are canonical base64url, so re-encoding what was decoded must give the
/// token back byte for byte; the header must survive a JSON round trip. Stateless; the
/// fuzzer's thread.
enum JOSETarget {
    static let policy = IssuerPolicy(issuer: "https://issuer.example", audiences: ["dbaudit"], maxLifetimeSeconds: 3600)

    static func run(_ input: UnsafeBufferPointer<UInt8>) {
        let jws: JWSCompact
        do {
            jws = try JWSCompact.parse(input)
        } catch {
            return
        }
        let token = Array(input)
        let dots = token.indices.filter { token[$0] == UInt8(ascii: ".") }
        invariant(dots.count == 2, "accepted a token with \(dots.count) dots")
        invariant(jws.signingInput == Array(token[..<dots[1]]), "signing input is not the first two segments")
        invariant(
            Array(Base64URL.encode(jws.payload).utf8) == Array(token[(dots[0] + 1)..<dots[1]]),
            "payload segment is not the canonical encoding of the decoded payload"
        )
        invariant(
            Array(Base64URL.encode(jws.signature).utf8) == Array(token[(dots[1] + 1)...]),
            "signature segment is not the canonical encoding of the decoded signature"
        )
        invariant(jws.header["alg"]?.string == jws.algorithm.rawValue, "algorithm differs from the header's alg")
        invariant(jws.header["crit"] == nil, "accepted a crit header")
        JSONTarget.roundTrip(.object(jws.header))
        guard let claims = try? StrictJSON.parseObject(jws.payload) else { return }
        JSONTarget.roundTrip(.object(claims))
        for now: Int64 in [0, 1_700_000_000, .max] {
            if let verified = try? JWTClaimsValidator.validate(
                claims: claims,
                type: jws.type,
                policy: policy,
                now: now
            ) {
                invariant(claims["iss"]?.string == policy.issuer, "accepted a token from another issuer")
                invariant(claims["exp"]?.numericDate != nil, "accepted a token without a numeric exp")
                _ = verified
            }
        }
    }
}
