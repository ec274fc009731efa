import Testing

@testable import GatewayCrypto

@Suite struct AESGCMTests {
    let key = (0..<32).map { UInt8($0) }

    @Test func sealedValuesOpenWithTheSameKeyAndData() {
        let plaintext = Array("{\"access_token\":\"x\"}".utf8)
        let sealed = AESGCM.seal(plaintext, key: key, associatedData: Array("ad".utf8))
        #expect(sealed.count == plaintext.count + 28)
        #expect(!sealed.starts(with: plaintext) && Array(sealed[12..<(12 + plaintext.count)]) != plaintext)
        #expect(AESGCM.open(sealed, key: key, associatedData: Array("ad".utf8)) == plaintext)
    }

    @Test func anotherKeyOtherDataOrAnAlteredByteDoNotOpen() {
        let sealed = AESGCM.seal(Array("secret pair".utf8), key: key)
        var otherKey = key
        otherKey[0] ^= 1
        #expect(AESGCM.open(sealed, key: otherKey) == nil)
        #expect(AESGCM.open(sealed, key: key, associatedData: [1]) == nil)
        for index in [0, 12, sealed.count - 1] {
            var altered = sealed
            altered[index] ^= 0x80
            #expect(AESGCM.open(altered, key: key) == nil)
        }
        #expect(AESGCM.open(Array(sealed.prefix(20)), key: key) == nil)
    }

    /// NIST GCM test case 14 (AES-256, zero key, zero IV, one zero block) through `open`:
    /// the sealed form is IV || ciphertext || tag.
    @Test func aKnownAnswerOpens() {
        func bytes(_ hex: String) -> [UInt8] {
            var out: [UInt8] = []
            var index = hex.startIndex
            while index < hex.endIndex {
                let next = hex.index(index, offsetBy: 2)
                out.append(UInt8(hex[index..<next], radix: 16)!)
                index = next
            }
            return out
        }
        let sealed =
            [UInt8](repeating: 0, count: 12) + bytes("cea7403d4d606b6e074ec5d3baf39d18")
            + bytes("d0d1c8a799996bf0265b98b5d48ab919")
        #expect(AESGCM.open(sealed, key: [UInt8](repeating: 0, count: 32)) == [UInt8](repeating: 0, count: 16))
    }
}
