import GatewayCore
import Testing

@Suite struct RequestIDValidityTests {
    @Test(arguments: [
        "a",
        "abc-123",
        "A-Z_a.z:0@9+=",
        "0123456789abcdef0123456789abcdef",
        "req:2024-01-01T00:00:00.000Z",
        String(repeating: "x", count: 128),
    ])
    func keepsWellFormedIDs(_ value: String) {
        #expect(RequestID.isValid(value))
    }

    @Test(arguments: [
        "",
        "a b",
        "a\tb",
        "quote\"d",
        "semi;colon",
        "comma,separated",
        "slash/ed",
        "line\nbreak",
        "cr\rx",
        "nul\u{0}x",
        "del\u{7F}x",
        "caf\u{E9}",
        "emoji\u{1F600}",
        "<script>",
        "a%20b",
        String(repeating: "x", count: 129),
    ])
    func rejectsMalformedIDs(_ value: String) {
        #expect(!RequestID.isValid(value))
    }

    @Test func maximumLengthIs128() {
        #expect(RequestID.maximumLength == 128)
        #expect(RequestID.isValid(String(repeating: "9", count: RequestID.maximumLength)))
        #expect(!RequestID.isValid(String(repeating: "9", count: RequestID.maximumLength + 1)))
    }
}

@Suite struct RequestIDGeneratorTests {
    private static func isLowercaseHex32(_ id: String) -> Bool {
        id.utf8.count == 32
            && id.utf8.allSatisfy {
                ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                    || ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "f"))
            }
    }

    @Test func idsAre32LowercaseHexAndValid() {
        var generator = RequestIDGenerator()
        for _ in 0..<1000 {
            let id = generator.next()
            #expect(Self.isLowercaseHex32(id), "\(id)")
            #expect(RequestID.isValid(id))
        }
    }

    @Test func tenThousandDrawsAreDistinct() {
        var generator = RequestIDGenerator()
        var seen = Set<String>()
        for _ in 0..<10_000 {
            let id = generator.next()
            #expect(Self.isLowercaseHex32(id))
            seen.insert(id)
        }
        #expect(seen.count == 10_000)
    }

    @Test func twoSystemSeededGeneratorsDiffer() {
        var a = RequestIDGenerator()
        var b = RequestIDGenerator()
        #expect(a.next() != b.next())
    }

    @Test func fixedSeedIsDeterministic() {
        var a = RequestIDGenerator(seed: (11, 22, 33, 44))
        var b = RequestIDGenerator(seed: (11, 22, 33, 44))
        let first = (0..<100).map { _ in a.next() }
        let second = (0..<100).map { _ in b.next() }
        #expect(first == second)
        #expect(Set(first).count == 100)
    }

    @Test func everySeedWordInfluencesTheStream() {
        func ids(_ seed: (UInt64, UInt64, UInt64, UInt64)) -> [String] {
            var generator = RequestIDGenerator(seed: seed)
            return (0..<4).map { _ in generator.next() }
        }
        let base = ids((11, 22, 33, 44))
        #expect(ids((12, 22, 33, 44)) != base)
        #expect(ids((11, 23, 33, 44)) != base)
        #expect(ids((11, 22, 34, 44)) != base)
        #expect(ids((11, 22, 33, 45)) != base)
    }

    /// xoshiro256** reference outputs for the state (1, 2, 3, 4) are
    /// 11520, 0, 1509978240, 1215971899390074240, ...; an id is two words, high first.
    @Test func matchesXoshiro256StarStarReferenceStream() {
        var generator = RequestIDGenerator(seed: (1, 2, 3, 4))
        #expect(generator.next() == "0000000000002d000000000000000000")
        #expect(generator.next() == "000000005a00708010e0000000009d80")
        #expect(generator.next() == "10e0b61ce1009d800870021ce143ad00")
    }

    @Test func allZeroSeedDoesNotEmitZeros() {
        var generator = RequestIDGenerator(seed: (0, 0, 0, 0))
        let ids = (0..<4).map { _ in generator.next() }
        #expect(!ids.contains(String(repeating: "0", count: 32)))
        #expect(Set(ids).count == 4)
    }
}
