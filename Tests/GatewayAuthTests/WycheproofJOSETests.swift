import Foundation
import GatewayCrypto
import Testing

@testable import GatewayAuth

/// Wycheproof vectors (C2SP/wycheproof, Apache-2.0; copied with their LICENSE into
/// Tests/Vectors/wycheproof so the repository stands alone).
enum Wycheproof {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Vectors/wycheproof")

    static func load(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: directory.appendingPathComponent(name))
        return try #require(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func groups(_ name: String) throws -> [[String: Any]] {
        try #require(try load(name)["testGroups"] as? [[String: Any]])
    }

    static func jsonBytes(_ object: Any) throws -> [UInt8] {
        Array(try JSONSerialization.data(withJSONObject: object))
    }

    static func hex(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
            out.append(UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)!)
        }
        return out
    }
}

/// One JWS test of json_web_signature_test.json: its key (a single JWK; HMAC keys are the
/// group's `private` member, configured as symmetric), token and expected result.
struct JWSVector: CustomTestStringConvertible, Sendable {
    let id: String
    let comment: String
    let group: String
    let jwk: [UInt8]
    let symmetric: Bool
    let jws: String
    let valid: Bool
    var testDescription: String { "tc\(id) \(group)/\(comment)" }

    static func all() throws -> [JWSVector] {
        var vectors: [JWSVector] = []
        for group in try Wycheproof.groups("json_web_signature_test.json") {
            let comment = group["comment"] as? String ?? ""
            let publicKey = group["public"] as? [String: Any]
            let privateKey = group["private"] as? [String: Any]
            let symmetric = (privateKey?["kty"] as? String) == "oct"
            guard let key = symmetric ? privateKey : (publicKey ?? privateKey) else { continue }
            let jwk = try Wycheproof.jsonBytes(key)
            for test in group["tests"] as? [[String: Any]] ?? [] {
                vectors.append(
                    JWSVector(
                        id: "\(test["tcId"]!)",
                        comment: test["comment"] as? String ?? "",
                        group: comment,
                        jwk: jwk,
                        symmetric: symmetric,
                        jws: test["jws"] as! String,
                        valid: (test["result"] as? String) == "valid"
                    )
                )
            }
        }
        return vectors
    }

    /// The verification a gateway performs below the claims: parse the JWS strictly,
    /// pick the key by `kid` and pinned algorithm, check the signature.
    func verifies() -> Bool {
        guard let object = try? StrictJSON.parseObject(jwk),
            let key = try? JSONWebKey.parse(object, allowSymmetric: symmetric),
            let parsed = try? JWSCompact.parse(jws.utf8)
        else { return false }
        let set = JSONWebKeySet(keys: [key])
        return parsed.verify(with: set.candidates(keyID: parsed.keyID, algorithm: parsed.algorithm))
    }
}

@Suite("Wycheproof JWS")
struct WycheproofJWSTests {
    static let vectors: [JWSVector] = (try? JWSVector.all()) ?? []
    /// Wycheproof marks these "valid" because some libraries tolerate stray characters in
    /// base64url; we decode strictly (RFC 7515 §2) and refuse them on purpose.
    static let lenientBase64 = ["InvalidCharacterInsertedInHeader", "InvalidCharacterInsertedInPayload"]

    /// tc367 and tc370 ("invalidBase64Padding...") are byte-for-byte the valid tc357 in
    /// this copy of the file (the padding they describe was lost when it was generated), so
    /// no verifier can both accept tc357 and refuse them. `paddingIsRefused` tests what
    /// they meant to test.
    static let identicalToAValidCase = ["367", "370"]
    /// Valid in Wycheproof, refused here by design: Figure 27 is ES512 (P-521), which the
    /// gateway does not implement; Figure 20 signs with PS384 under a JWK whose `alg` is
    /// PS256, and a key's `alg` pins its algorithm (RFC 8725 §3.1).
    static let refusedByPolicy = ["346", "347", "350", "351"]

    @Test func theExclusionsAreWhatTheySay() throws {
        let byID = Dictionary(uniqueKeysWithValues: Self.vectors.map { ($0.id, $0) })
        for id in Self.identicalToAValidCase {
            #expect(byID[id]?.jws == byID["357"]?.jws)
            #expect(byID[id]?.valid == false)
        }
        for id in Self.refusedByPolicy {
            let vector = try #require(byID[id])
            let jwk = try StrictJSON.parseObject(vector.jwk)
            if let parsed = try? JWSCompact.parse(vector.jws.utf8) {
                #expect(parsed.algorithm == .ps384 && jwk["alg"]?.string == "PS256")
            } else {
                #expect(jwk["crv"]?.string == "P-521")  // ES512 on P-521: not an algorithm we implement
            }
        }
    }

    @Test func paddingIsRefused() throws {
        let valid = try #require(Self.vectors.first { $0.id == "357" })
        let parts = valid.jws.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        for index in 0..<3 {
            var padded = parts
            padded[index] += "="
            let token = padded.joined(separator: ".")
            #expect(
                JWSVector(id: "x", comment: "", group: "", jwk: valid.jwk, symmetric: true, jws: token, valid: false)
                    .verifies() == false
            )
        }
    }

    @Test func theVectorFileLoads() {
        #expect(Self.vectors.count == 401)
        #expect(Self.vectors.filter { !$0.valid }.count > 300)
    }

    @Test(
        "every invalid case is rejected",
        arguments: vectors.filter { !$0.valid && !identicalToAValidCase.contains($0.id) }
    )
    func invalid(_ vector: JWSVector) {
        #expect(!vector.verifies())
    }

    @Test(
        "signature-level valid cases verify",
        arguments: vectors.filter {
            $0.valid && !lenientBase64.contains($0.comment) && !refusedByPolicy.contains($0.id)
        }
    )
    func valid(_ vector: JWSVector) {
        #expect(vector.verifies())
    }

    @Test(
        "valid cases outside the supported algorithms or the key's pinned algorithm are refused",
        arguments: vectors.filter { refusedByPolicy.contains($0.id) }
    )
    func refused(_ vector: JWSVector) {
        #expect(!vector.verifies())
    }

    @Test(
        "stray characters in base64url are refused even where Wycheproof tolerates them",
        arguments: vectors.filter { lenientBase64.contains($0.comment) }
    )
    func lenient(_ vector: JWSVector) {
        #expect(!vector.verifies())
    }
}

@Suite("Wycheproof JWK sets")
struct WycheproofJWKTests {
    struct Vector: CustomTestStringConvertible, Sendable {
        let id: String, comment: String, keys: [UInt8], jws: String, valid: Bool, symmetric: Bool
        var testDescription: String { "tc\(id) \(comment)" }
    }

    static let vectors: [Vector] = {
        guard let groups = try? Wycheproof.groups("json_web_key_test.json") else { return [] }
        var out: [Vector] = []
        for group in groups {
            let set = (group["public"] ?? group["private"]) as? [String: Any] ?? [:]
            let keys = set["keys"] as? [[String: Any]] ?? []
            let symmetric = keys.contains { $0["kty"] as? String == "oct" }
            let bytes = (try? Wycheproof.jsonBytes(set)) ?? []
            for test in group["tests"] as? [[String: Any]] ?? [] {
                out.append(
                    Vector(
                        id: "\(test["tcId"]!)",
                        comment: test["comment"] as? String ?? "",
                        keys: bytes,
                        jws: test["jws"] as! String,
                        valid: (test["result"] as? String) == "valid",
                        symmetric: symmetric
                    )
                )
            }
        }
        return out
    }()

    @Test func loads() { #expect(Self.vectors.count == 26) }

    @Test(arguments: vectors)
    func keySet(_ vector: Vector) {
        var verified = false
        if let set = try? JSONWebKeySet.parse(vector.keys, allowSymmetric: vector.symmetric),
            let jws = try? JWSCompact.parse(vector.jws.utf8)
        {
            verified = jws.verify(with: set.candidates(keyID: jws.keyID, algorithm: jws.algorithm))
        }
        #expect(verified == vector.valid)
    }

    static let privateECKey =
        #"{"kty":"EC","crv":"P-256","x":"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY","y":"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw","d":"yy49oPcINGK2ps0LmtxpB6UTEOiITghHBif6wDqmJ3c"}"#

    @Test func anOperatorFileWithPrivateKeysIsRefusedWhole() throws {
        let document = "{\"keys\":[\(Self.privateECKey)]}"
        #expect(throws: JSONWebKeyError.self) { try JSONWebKeySet.parse(Array(document.utf8), allowSymmetric: true) }
    }

    @Test func aProvidersPrivateKeyIsLeftOutAndTheRestKept() throws {
        let publicKey =
            #"{"kty":"EC","crv":"P-256","kid":"pub","x":"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY","y":"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw"}"#
        let document = "{\"keys\":[\(Self.privateECKey),\(publicKey)]}"
        let set = try JSONWebKeySet.parse(Array(document.utf8), allowSymmetric: false)
        #expect(set.keys.map(\.keyID) == ["pub"])
        #expect(set.problems.count == 1)
        #expect(set.problems.first?.contains("private") == true)
    }

    @Test func symmetricKeysFromAFetchedSetAreIgnored() throws {
        let document =
            #"{"keys":[{"kty":"oct","alg":"HS256","kid":"a","k":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}]}"#
        let set = try JSONWebKeySet.parse(Array(document.utf8), allowSymmetric: false)
        #expect(set.keys.isEmpty)
        #expect(set.problems.count == 1)
    }
}

@Suite("Wycheproof primitives against the OpenSSL wrappers")
struct WycheproofPrimitiveTests {
    struct Vector: CustomTestStringConvertible, Sendable {
        let file: String, id: String, jwk: [UInt8], message: [UInt8], signature: [UInt8], result: String
        var testDescription: String { "\(file) tc\(id)" }
    }

    static func signatureVectors(_ file: String, algorithm: String) -> [Vector] {
        guard let groups = try? Wycheproof.groups(file) else { return [] }
        var out: [Vector] = []
        for group in groups {
            // Some ECDSA groups (the r/x reduction edge cases) give only the uncompressed point:
            // its JWK is built here, so those cases run too (a group still skipped fails
            // `everyCaseOfEveryFileIsLoaded`).
            guard var jwk = (group["publicKeyJwk"] ?? group["keyJwk"]) as? [String: Any] ?? ecJWK(group) else {
                continue
            }
            jwk["alg"] = algorithm
            jwk.removeValue(forKey: "kid")
            let bytes = (try? Wycheproof.jsonBytes(jwk)) ?? []
            for test in group["tests"] as? [[String: Any]] ?? [] {
                out.append(
                    Vector(
                        file: file,
                        id: "\(test["tcId"]!)",
                        jwk: bytes,
                        message: Wycheproof.hex(test["msg"] as! String),
                        signature: Wycheproof.hex(test["sig"] as! String),
                        result: test["result"] as! String
                    )
                )
            }
        }
        return out
    }

    /// A P-256 JWK from a group's `publicKey.uncompressed` (04 || x || y, hex).
    static func ecJWK(_ group: [String: Any]) -> [String: Any]? {
        guard let key = group["publicKey"] as? [String: Any], key["curve"] as? String == "secp256r1",
            let point = key["uncompressed"] as? String
        else { return nil }
        let bytes = Wycheproof.hex(point)
        guard bytes.count == 65, bytes[0] == 4 else { return nil }
        func b64url(_ part: ArraySlice<UInt8>) -> String {
            Data(part).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        }
        return ["kty": "EC", "crv": "P-256", "x": b64url(bytes[1..<33]), "y": b64url(bytes[33..<65])]
    }

    static let ecdsa = signatureVectors("ecdsa_secp256r1_sha256_p1363_test.json", algorithm: "ES256")
    static let ed25519 = signatureVectors("ed25519_test.json", algorithm: "EdDSA")
    static let pss = signatureVectors("rsa_pss_2048_sha256_mgf1_32_test.json", algorithm: "PS256")
    static let pkcs1 = signatureVectors("rsa_signature_2048_sha256_test.json", algorithm: "RS256")

    static func check(_ vector: Vector) {
        guard let object = try? StrictJSON.parseObject(vector.jwk),
            let key = try? JSONWebKey.parse(object, allowSymmetric: false)
        else {
            // A key we refuse can only be right for vectors that expect refusal.
            #expect(vector.result != "valid", "key refused for a valid vector")
            return
        }
        let verified = key.verify(signingInput: vector.message, signature: vector.signature)
        switch vector.result {
        case "valid": #expect(verified)
        case "invalid": #expect(!verified)
        default: break  // "acceptable": either answer is allowed.
        }
    }

    /// Every case of every file is run: a file that failed to load would otherwise give an
    /// empty argument list, and a parameterized test with no arguments passes.
    @Test func everyCaseOfEveryFileIsLoaded() throws {
        func declared(_ file: String) throws -> Int {
            try #require(try Wycheproof.load(file)["numberOfTests"] as? Int)
        }
        let expected = [
            "ecdsa": try declared("ecdsa_secp256r1_sha256_p1363_test.json"),
            "ed25519": try declared("ed25519_test.json"),
            "pss": try declared("rsa_pss_2048_sha256_mgf1_32_test.json"),
            "pkcs1": try declared("rsa_signature_2048_sha256_test.json"),
            "hmac": try declared("hmac_sha256_test.json"),
            "jws": try declared("json_web_signature_test.json"),
            "jwk": try declared("json_web_key_test.json"),
        ]
        let loaded = [
            "ecdsa": Self.ecdsa.count, "ed25519": Self.ed25519.count, "pss": Self.pss.count, "pkcs1": Self.pkcs1.count,
            "hmac": Self.hmac.count, "jws": WycheproofJWSTests.vectors.count, "jwk": WycheproofJWKTests.vectors.count,
        ]
        #expect(loaded == expected)
        #expect(expected.values.reduce(0, +) == 1381)  // the copies under Tests/Vectors/wycheproof
    }

    @Test("ECDSA P-256 P1363", arguments: ecdsa) func ecdsaP1363(_ vector: Vector) { Self.check(vector) }
    @Test("Ed25519", arguments: ed25519) func ed25519Vectors(_ vector: Vector) { Self.check(vector) }
    @Test("RSASSA-PSS 2048 SHA-256", arguments: pss) func rsaPSS(_ vector: Vector) { Self.check(vector) }
    @Test("RSASSA-PKCS1-v1_5 2048 SHA-256", arguments: pkcs1) func rsaPKCS1(_ vector: Vector) { Self.check(vector) }

    struct MACVector: CustomTestStringConvertible, Sendable {
        let id: String, key: [UInt8], message: [UInt8], tag: [UInt8], valid: Bool
        var testDescription: String { "tc\(id)" }
    }

    static let hmac: [MACVector] = {
        guard let groups = try? Wycheproof.groups("hmac_sha256_test.json") else { return [] }
        return groups.flatMap { group in
            (group["tests"] as? [[String: Any]] ?? []).map { test in
                MACVector(
                    id: "\(test["tcId"]!)",
                    key: Wycheproof.hex(test["key"] as! String),
                    message: Wycheproof.hex(test["msg"] as! String),
                    tag: Wycheproof.hex(test["tag"] as! String),
                    valid: test["result"] as? String == "valid"
                )
            }
        }
    }()

    @Test("HMAC-SHA256", arguments: hmac)
    func hmacSHA256(_ vector: MACVector) {
        guard !vector.key.isEmpty else { return }
        let full = HMACFunction.authenticationCode(.hs256, key: vector.key, message: vector.message)
        // Truncated-tag groups compare the leading bytes (RFC 2104 §5).
        let matches = HMACSHA256.constantTimeEquals(Array(full.prefix(vector.tag.count)), vector.tag)
        #expect(matches == vector.valid)
    }
}
