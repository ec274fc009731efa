import Testing

@testable import GatewayCrypto

/// `AsymmetricKey` on OpenSSL: sign/verify per algorithm, key import bounds, raw ECDSA.
@Suite struct AsymmetricKeyTests {
    static let rsa = try! AsymmetricKey.generate(.rsa(bits: 2048))
    static let p256 = try! AsymmetricKey.generate(.ec(curve: "P-256"))
    static let p384 = try! AsymmetricKey.generate(.ec(curve: "P-384"))
    static let ed25519 = try! AsymmetricKey.generate(.ed25519)
    static let message = Array("eyJhbGciOiJQUzI1NiJ9.eyJzdWIiOiJ4In0".utf8)

    @Test func kinds() {
        #expect(Self.rsa.kind == .rsa(bits: 2048) && Self.rsa.hasPrivateKey)
        #expect(Self.p256.kind == .ec(curve: "P-256"))
        #expect(Self.p384.kind == .ec(curve: "P-384"))
        #expect(Self.ed25519.kind == .ed25519)
    }

    @Test(arguments: [SignatureAlgorithm.ps256, .ps384, .ps512, .rs256, .rs384, .rs512])
    func rsaSignVerify(algorithm: SignatureAlgorithm) throws {
        let signature = try Self.rsa.sign(algorithm, message: Self.message)
        #expect(signature.count == 256)
        let parameters = Self.rsa.publicParameters
        let publicKey = try AsymmetricKey.rsaPublicKey(modulus: parameters["n"]!, exponent: parameters["e"]!)
        #expect(!publicKey.hasPrivateKey)
        #expect(publicKey.verify(algorithm, signature: signature, message: Self.message))
        #expect(!publicKey.verify(algorithm, signature: signature, message: Self.message + [0]))
        // No other RSA algorithm accepts it (padding and digest are bound to the algorithm).
        for other in SignatureAlgorithm.allCases where other != algorithm && !other.isSymmetric {
            #expect(!publicKey.verify(other, signature: signature, message: Self.message), "\(other)")
        }
        // Truncated or extended signatures are refused before OpenSSL sees them.
        #expect(!publicKey.verify(algorithm, signature: signature.dropLast(), message: Self.message))
        #expect(!publicKey.verify(algorithm, signature: [0] + signature, message: Self.message))
        // A public key cannot sign.
        #expect(throws: CryptoKeyError.self) { try publicKey.sign(algorithm, message: Self.message) }
    }

    @Test func psIsRandomizedRsIsNot() throws {
        #expect(try Self.rsa.sign(.ps256, message: Self.message) != Self.rsa.sign(.ps256, message: Self.message))
        #expect(try Self.rsa.sign(.rs256, message: Self.message) == Self.rsa.sign(.rs256, message: Self.message))
    }

    @Test func es384SignVerify() throws {
        let signature = try Self.p384.sign(.es384, message: Self.message)
        #expect(signature.count == 96)
        let parameters = Self.p384.publicParameters
        #expect(parameters["x"]?.count == 48 && parameters["y"]?.count == 48)
        let publicKey = try AsymmetricKey.ecPublicKey(curve: "P-384", x: parameters["x"]!, y: parameters["y"]!)
        #expect(publicKey.verify(.es384, signature: signature, message: Self.message))
        #expect(!publicKey.verify(.es256, signature: signature, message: Self.message))
        #expect(!publicKey.verify(.es384, signature: signature, message: Self.message.dropLast()))
        // P-256 key cannot sign ES384, nor the other way round.
        #expect(throws: CryptoKeyError.self) { try Self.p256.sign(.es384, message: Self.message) }
        #expect(throws: CryptoKeyError.self) { try Self.p384.sign(.es256, message: Self.message) }
    }

    @Test func es256RawSignatureRules() throws {
        let signature = try Self.p256.sign(.es256, message: Self.message)
        #expect(signature.count == 64)
        #expect(Self.p256.verify(.es256, signature: signature, message: Self.message))
        // DER form refused.
        let der = try #require(AsymmetricKey.derSignature(rawRS: signature, scalarBytes: 32))
        #expect(!Self.p256.verify(.es256, signature: der, message: Self.message))
        // Wrong lengths refused.
        #expect(!Self.p256.verify(.es256, signature: Array(signature.dropLast()), message: Self.message))
        #expect(!Self.p256.verify(.es256, signature: signature + [0], message: Self.message))
        // r = 0 or s = 0 refused.
        #expect(
            !Self.p256.verify(
                .es256,
                signature: Array(repeating: 0, count: 32) + signature[32...],
                message: Self.message
            )
        )
        #expect(
            !Self.p256.verify(
                .es256,
                signature: Array(signature[..<32]) + Array(repeating: 0, count: 32),
                message: Self.message
            )
        )
        // s + n (out of [1, n-1]) refused: P-256 order n.
        let n = HexBytes.decode("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")
        let sPlusN = add(Array(signature[32...]), n)
        if sPlusN.count == 32 {
            #expect(!Self.p256.verify(.es256, signature: Array(signature[..<32]) + sPlusN, message: Self.message))
        }
        // All-ones halves (>= n) refused.
        #expect(!Self.p256.verify(.es256, signature: Array(repeating: 0xFF, count: 64), message: Self.message))
    }

    @Test func ed25519SignVerify() throws {
        let signature = try Self.ed25519.sign(.edDSA, message: Self.message)
        #expect(signature.count == 64)
        let publicKey = try AsymmetricKey.ed25519PublicKey(Self.ed25519.publicParameters["x"]!)
        #expect(publicKey.verify(.edDSA, signature: signature, message: Self.message))
        #expect(!publicKey.verify(.edDSA, signature: signature, message: Self.message + [1]))
        #expect(try Self.ed25519.sign(.edDSA, message: Self.message) == signature)
        #expect(throws: CryptoKeyError.self) { try AsymmetricKey.ed25519PublicKey(Array(repeating: 1, count: 31)) }
    }

    @Test func rsaImportBounds() throws {
        let weak = try AsymmetricKey.generate(.rsa(bits: 1024)).publicParameters
        #expect(throws: CryptoKeyError.self) {
            try AsymmetricKey.rsaPublicKey(modulus: weak["n"]!, exponent: weak["e"]!)
        }
        let n = Self.rsa.publicParameters["n"]!
        for exponent: [UInt8] in [
            [1], [0, 1], [2], [0x01, 0x00, 0x00], [], [0], Array(repeating: 0xFF, count: 9) + [1],
        ] {
            #expect(throws: CryptoKeyError.self, "\(exponent)") {
                try AsymmetricKey.rsaPublicKey(modulus: n, exponent: exponent)
            }
        }
        #expect(try AsymmetricKey.rsaPublicKey(modulus: n, exponent: [3]).kind == .rsa(bits: 2048))
        // Leading zero bytes on n do not change the key.
        #expect(try AsymmetricKey.rsaPublicKey(modulus: [0, 0] + n, exponent: [1, 0, 1]).kind == .rsa(bits: 2048))
        // A 2048-bit-long byte string with its top bits clear is a smaller modulus.
        var short = n
        short[0] = 0x01
        #expect(throws: CryptoKeyError.self) { try AsymmetricKey.rsaPublicKey(modulus: short, exponent: [1, 0, 1]) }
    }

    @Test func ecImportBounds() throws {
        let parameters = Self.p256.publicParameters
        var y = parameters["y"]!
        y[31] ^= 1
        #expect(throws: CryptoKeyError.self) {
            try AsymmetricKey.ecPublicKey(curve: "P-256", x: parameters["x"]!, y: y)
        }
        #expect(throws: CryptoKeyError.self) {
            try AsymmetricKey.ecPublicKey(curve: "P-256", x: [0] + parameters["x"]!, y: parameters["y"]!)
        }
        #expect(throws: CryptoKeyError.self) {
            try AsymmetricKey.ecPublicKey(curve: "P-384", x: parameters["x"]!, y: parameters["y"]!)
        }
        #expect(throws: CryptoKeyError.self) {
            try AsymmetricKey.ecPublicKey(curve: "P-521", x: parameters["x"]!, y: parameters["y"]!)
        }
        #expect(throws: CryptoKeyError.self) {
            try AsymmetricKey.ecPublicKey(
                curve: "P-256",
                x: Array(repeating: 0, count: 32),
                y: Array(repeating: 0, count: 32)
            )
        }
    }

    @Test func privateKeyPEMIsRequired() {
        #expect(throws: CryptoKeyError.self) { try AsymmetricKey.privateKey(pem: Array("not a key".utf8)) }
        #expect(throws: CryptoKeyError.self) { try AsymmetricKey.privateKey(pem: []) }
    }

    @Test func hmacSizesAndKnownAnswer() {
        // RFC 4231 test case 2.
        let mac = HMACFunction.authenticationCode(
            .hs256,
            key: Array("Jefe".utf8),
            message: Array("what do ya want for nothing?".utf8)
        )
        #expect(Hex.encode(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(HMACFunction.authenticationCode(.hs384, key: [1], message: []).count == 48)
        #expect(HMACFunction.authenticationCode(.hs512, key: [1], message: []).count == 64)
        #expect(SignatureAlgorithm.hs256.minimumSymmetricKeyBytes == 32)
    }

    /// Big-endian a + b.
    private func add(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: max(a.count, b.count) + 1)
        var carry = 0
        for index in 0..<(result.count - 1) {
            let x = index < a.count ? Int(a[a.count - 1 - index]) : 0
            let y = index < b.count ? Int(b[b.count - 1 - index]) : 0
            let sum = x + y + carry
            result[result.count - 1 - index] = UInt8(sum & 0xFF)
            carry = sum >> 8
        }
        result[0] = UInt8(carry)
        return result.first == 0 ? Array(result.dropFirst()) : result
    }
}

enum HexBytes {
    static func decode(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
            out.append(UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)!)
        }
        return out
    }
}
