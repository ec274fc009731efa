import GatewayCrypto
import Testing

@Suite struct HMACTests {
    /// RFC 4231 test case 2.
    static let key = Array("Jefe".utf8)
    static let message = "what do ya want for nothing?"
    static let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"

    @Test func oneShotMatchesRFC4231() {
        let mac = HMACSHA256(key: Self.key).authenticationCode(for: Self.message.utf8)
        #expect(Hex.encode(mac) == Self.expected)
    }

    @Test func reusedContextMatchesRFC4231EveryTime() {
        let context = HMACSHA256(key: Self.key).makeContext()
        for _ in 0..<3 {
            #expect(context.hexAuthenticationCode(for: Self.message) == Self.expected)
        }
        // A different message in between does not disturb the keyed state.
        #expect(context.hexAuthenticationCode(for: "") != Self.expected)
        #expect(context.hexAuthenticationCode(for: Self.message) == Self.expected)
    }

    /// RFC 4231 test case 6: a key longer than the block size is hashed first.
    @Test func longKeyMatchesRFC4231() {
        let key = [UInt8](repeating: 0xAA, count: 131)
        let context = HMACSHA256(key: key).makeContext()
        #expect(
            context.hexAuthenticationCode(for: "Test Using Larger Than Block-Size Key - Hash Key First")
                == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        )
    }

    @Test func constantTimeEquality() {
        #expect(HMACSHA256.constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!HMACSHA256.constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(!HMACSHA256.constantTimeEquals([1, 2, 3], [1, 2]))
    }

    @Test func randomBytesAreRandom() {
        let a = SecureRandom.bytes(32)
        let b = SecureRandom.bytes(32)
        #expect(a.count == 32 && b.count == 32 && a != b)
    }
}
