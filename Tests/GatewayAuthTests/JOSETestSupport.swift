import Foundation
import GatewayCore
import GatewayCrypto
import Testing

@testable import GatewayAuth

/// Test vectors typed in from RFC 7515 Appendix A (JWS examples), RFC 7517 Appendix A
/// (the same public keys as JWKs) and RFC 8037 Appendix A (Ed25519).
enum RFCVectors {
    /// A.1–A.3 claims: `{"iss":"joe",\r\n "exp":1300819380,\r\n "http://example.com/is_root":true}`.
    static let payload =
        "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    static let exp: Int64 = 1_300_819_380
    /// 2011-03-22, 80 s before `exp`.
    static let validAt: Int64 = 1_300_819_300

    // A.1 HS256, header {"typ":"JWT",\r\n "alg":"HS256"}
    static let a1Key = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"
    static let a1Token =
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9." + payload + ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

    // A.2 RS256, header {"alg":"RS256"}
    static let a2Modulus =
        "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMs"
        + "D1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdV"
        + "MTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"
    static let a2Exponent = "AQAB"
    static let a2Token =
        "eyJhbGciOiJSUzI1NiJ9." + payload + "."
        + "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZ"
        + "cAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eO"
        + "kHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw"

    // A.3 ES256, header {"alg":"ES256"}
    static let a3X = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
    static let a3Y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
    static let a3Token =
        "eyJhbGciOiJFUzI1NiJ9." + payload + "."
        + "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"

    // RFC 8037 A.2 public key, A.4 JWS over "Example of Ed25519 signing".
    static let ed25519X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    static let ed25519Token =
        "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
        + "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"

    static var a1JWK: String { #"{"kty":"oct","alg":"HS256","k":"\#(a1Key)"}"# }
    static var a2JWK: String { #"{"kty":"RSA","kid":"2011-04-29","n":"\#(a2Modulus)","e":"\#(a2Exponent)"}"# }
    static var a3JWK: String { #"{"kty":"EC","crv":"P-256","x":"\#(a3X)","y":"\#(a3Y)"}"# }
    static var ed25519JWK: String { #"{"kty":"OKP","crv":"Ed25519","x":"\#(ed25519X)"}"# }
}

func b64(_ bytes: [UInt8]) -> String { Base64URL.encode(bytes) }
func b64(_ text: String) -> String { Base64URL.encode(Array(text.utf8)) }

/// A JWK object parsed with the gateway's own parsers.
func parseJWK(_ json: String, allowSymmetric: Bool = false) throws -> VerificationKey {
    let object = try StrictJSON.parseObject(Array(json.utf8))
    return try JSONWebKey.parse(object, allowSymmetric: allowSymmetric)
}

/// What signs test tokens: an asymmetric key pair or an HMAC secret.
enum TestSigner {
    case asymmetric(AsymmetricKey, SignatureAlgorithm)
    case hmac([UInt8], SignatureAlgorithm)

    var algorithm: SignatureAlgorithm {
        switch self {
        case .asymmetric(_, let algorithm), .hmac(_, let algorithm): algorithm
        }
    }

    func sign(_ input: String) throws -> [UInt8] {
        switch self {
        case .asymmetric(let key, let algorithm): try key.sign(algorithm, message: Array(input.utf8))
        case .hmac(let secret, let algorithm):
            HMACFunction.authenticationCode(algorithm, key: secret, message: Array(input.utf8))
        }
    }

    /// The public half as a verification key pinned to this algorithm.
    func verificationKey(keyID: String?) -> VerificationKey {
        switch self {
        case .asymmetric(let key, let algorithm):
            VerificationKey(keyID: keyID, algorithm: algorithm, material: .asymmetric(key))
        case .hmac(let secret, let algorithm):
            VerificationKey(keyID: keyID, algorithm: algorithm, material: .symmetric(SymmetricSecret(secret)))
        }
    }
}

/// Key pairs generated once per process (RSA generation is slow).
enum TestKeys {
    static let rsa: AsymmetricKey = try! AsymmetricKey.generate(.rsa(bits: 2048))
    static let rsa2: AsymmetricKey = try! AsymmetricKey.generate(.rsa(bits: 2048))
    static let p256: AsymmetricKey = try! AsymmetricKey.generate(.ec(curve: "P-256"))
    static let p384: AsymmetricKey = try! AsymmetricKey.generate(.ec(curve: "P-384"))
    static let ed25519: AsymmetricKey = try! AsymmetricKey.generate(.ed25519)
    static let hmacSecret: [UInt8] = Array(0..<32).map { UInt8($0) &* 7 &+ 3 }
}

/// Builds `header.payload.signature` from raw JSON texts (so tests control every byte).
func makeToken(header: String, claims: String, signer: TestSigner) throws -> String {
    let input = b64(header) + "." + b64(claims)
    return input + "." + b64(try signer.sign(input))
}

/// A claims object as JSON text, from `key: raw JSON value` pairs in order.
func claimsJSON(_ members: KeyValuePairs<String, String>) -> String {
    "{" + members.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",") + "}"
}

let testIssuer = "https://idp.example.com"
let testAudience = "dbaudit-api"
let testNow: Int64 = 1_800_000_000

/// Standard valid claims for `testIssuer` at `testNow`, with overrides (nil value = omit).
func standardClaims(_ overrides: [String: String?] = [:], order extra: [String] = []) -> String {
    var members: [(String, String)] = [
        ("iss", "\"\(testIssuer)\""), ("sub", "\"user-1\""), ("aud", "\"\(testAudience)\""),
        ("iat", "\(testNow - 10)"), ("nbf", "\(testNow - 10)"), ("exp", "\(testNow + 600)"),
        ("jti", "\"id-1\""), ("scope", "\"read:databases write:databases\""),
    ]
    for (name, value) in overrides {
        if let index = members.firstIndex(where: { $0.0 == name }) {
            if let value { members[index].1 = value } else { members.remove(at: index) }
        } else if let value {
            members.append((name, value))
        }
    }
    return "{" + members.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
}

func rs256Header(kid: String? = "k1", typ: String? = nil, alg: String = "RS256") -> String {
    var parts = ["\"alg\":\"\(alg)\""]
    if let kid { parts.append("\"kid\":\"\(kid)\"") }
    if let typ { parts.append("\"typ\":\"\(typ)\"") }
    return "{" + parts.joined(separator: ",") + "}"
}

extension JWTVerifier.Result {
    var failure: JWTFailure? {
        if case .failed(let failure) = self { return failure }
        return nil
    }

    var verified: VerifiedToken? {
        if case .verified(let token) = self { return token }
        return nil
    }

    var isUnknownKey: Bool {
        if case .unknownKey = self { return true }
        return false
    }
}

/// Runs the claims validator on a claims JSON text.
func validateClaims(
    _ claims: String,
    type: String? = nil,
    policy: IssuerPolicy,
    now: Int64 = testNow
) -> Result<VerifiedToken, JWTFailure> {
    do {
        let object = try StrictJSON.parseObject(Array(claims.utf8))
        return .success(try JWTClaimsValidator.validate(claims: object, type: type, policy: policy, now: now))
    } catch let failure as JWTFailure {
        return .failure(failure)
    } catch {
        return .failure(.malformed("test claims are not JSON: \(error)"))
    }
}

extension Result where Failure == JWTFailure {
    var jwtFailure: JWTFailure? {
        if case .failure(let failure) = self { return failure }
        return nil
    }

    var value: Success? {
        if case .success(let value) = self { return value }
        return nil
    }
}

/// Parse result of `JWSCompact.parse` as a failure (nil if it parsed).
func parseFailure(_ token: String) -> JWTFailure? {
    parseFailure(Array(token.utf8))
}

func parseFailure(_ token: [UInt8]) -> JWTFailure? {
    do {
        _ = try JWSCompact.parse(token)
        return nil
    } catch {
        return error
    }
}

func isMalformed(_ failure: JWTFailure?) -> Bool {
    if case .malformed = failure { return true }
    return false
}
