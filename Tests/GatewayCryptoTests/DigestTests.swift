import GatewayCrypto
import Testing

private func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    var out = ""
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0xF)])
    }
    return out
}

@Suite struct DigestTests {
    @Test func sha256OutputSizeIs32() {
        #expect(Digest.sha256.outputSize == 32)
    }

    /// FIPS 180-2, appendix B.1 and the empty message.
    @Test func sha256OfEmptyInput() {
        let digest = Digest.sha256.hash([UInt8]())
        #expect(digest.count == 32)
        #expect(hex(digest) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test func sha256OfABC() {
        let digest = Digest.sha256.hash(Array("abc".utf8))
        #expect(hex(digest) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    /// FIPS 180-2, appendix B.2 (a two-block message).
    @Test func sha256OfTwoBlockMessage() {
        let digest = Digest.sha256.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
        #expect(hex(digest) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    /// FIPS 180-2, appendix B.3: one million "a".
    @Test func sha256OfOneMillionA() {
        let digest = Digest.sha256.hash([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))
        #expect(hex(digest) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func hashAcceptsAnyByteCollection() {
        let slice = Array("xxabcxx".utf8)[2..<5]
        #expect(hex(Digest.sha256.hash(slice)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func openSSLIsVersion3() {
        let version = OpenSSLLibrary.version
        #expect(version.hasPrefix("OpenSSL 3"), "\(version)")
    }
}
