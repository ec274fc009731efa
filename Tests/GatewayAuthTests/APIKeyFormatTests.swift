import Testing

@testable import GatewayAuth

private let base62: [UInt8] = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

private func isBase62(_ byte: UInt8) -> Bool { base62.contains(byte) }

/// `prefix + body` followed by the checksum the format computes for it, so a test can
/// build a token whose checksum is right and whose only defect is the one under test.
private func withValidChecksum(_ prefixAndRandom: [UInt8]) -> String {
    String(decoding: prefixAndRandom + APIKeyFormat.checksum(of: prefixAndRandom[...]), as: UTF8.self)
}

private func randomPart(_ count: Int = APIKeyFormat.randomLength) -> [UInt8] {
    (0..<count).map { _ in base62.randomElement()! }
}

@Suite struct APIKeyFormatTests {
    // MARK: generation

    @Test(arguments: [false, true])
    func generatedKeysHaveTheDocumentedShape(test: Bool) throws {
        for _ in 0..<50 {
            let key = APIKeyFormat.generate(test: test)
            let bytes = Array(key.utf8)
            #expect(bytes.count == 51)
            #expect(APIKeyFormat.length == 51)
            #expect(key.hasPrefix(test ? "dbaudit_test_" : "dbaudit_live_"))
            #expect(!key.hasPrefix(test ? "dbaudit_live_" : "dbaudit_test_"))
            #expect(bytes[13...].allSatisfy(isBase62), "\(key)")
            #expect(APIKeyFormat.problem(with: key) == nil, "\(key)")
            #expect(APIKeyFormat.hasAPIKeyPrefix(key))
        }
    }

    @Test func generatedKeysAreDistinct() {
        var keys = Set<String>()
        var randomParts = Set<Substring>()
        for index in 0..<1_000 {
            let key = APIKeyFormat.generate(test: index.isMultiple(of: 2))
            keys.insert(key)
            randomParts.insert(key.dropFirst(13).prefix(APIKeyFormat.randomLength))
        }
        #expect(keys.count == 1_000)
        #expect(randomParts.count == 1_000)
    }

    @Test func generatedKeysUseTheWholeAlphabet() {
        // 200 keys carry 6,400 random characters: every one of the 62 should appear (a
        // biased or truncated alphabet, e.g. `byte % 36`, would miss some).
        var seen = Set<UInt8>()
        for _ in 0..<200 {
            let key = Array(APIKeyFormat.generate(test: false).utf8)
            seen.formUnion(key[13..<(13 + APIKeyFormat.randomLength)])
        }
        #expect(seen == Set(base62))
    }

    // MARK: typo detection

    @Test(arguments: [false, true])
    func everySingleCharacterSubstitutionIsDetected(test: Bool) {
        for _ in 0..<3 {
            let key = Array(APIKeyFormat.generate(test: test).utf8)
            var checked = 0
            for position in 13..<key.count {
                for replacement in base62 where replacement != key[position] {
                    var typo = key
                    typo[position] = replacement
                    let token = String(decoding: typo, as: UTF8.self)
                    #expect(
                        APIKeyFormat.problem(with: token) != nil,
                        "substitution at \(position) not detected: \(token)"
                    )
                    checked += 1
                }
            }
            #expect(checked == (APIKeyFormat.randomLength + APIKeyFormat.checksumLength) * 61)
        }
    }

    @Test func everySingleCharacterSubstitutionInThePrefixIsDetected() {
        let key = Array(APIKeyFormat.generate(test: false).utf8)
        for position in 0..<13 {
            for replacement in base62 + [UInt8(ascii: "_")] where replacement != key[position] {
                var typo = key
                typo[position] = replacement
                #expect(
                    APIKeyFormat.problem(with: String(decoding: typo, as: UTF8.self)) != nil,
                    "position \(position)"
                )
            }
        }
    }

    @Test func everyAdjacentTranspositionIsDetected() {
        let key = Array(APIKeyFormat.generate(test: true).utf8)
        for position in 13..<(key.count - 1) where key[position] != key[position + 1] {
            var typo = key
            typo.swapAt(position, position + 1)
            #expect(APIKeyFormat.problem(with: String(decoding: typo, as: UTF8.self)) != nil, "swap at \(position)")
        }
    }

    @Test func checksumMismatchIsNamed() throws {
        var key = Array(APIKeyFormat.generate(test: false).utf8)
        key[20] = key[20] == UInt8(ascii: "a") ? UInt8(ascii: "b") : UInt8(ascii: "a")
        let problem = try #require(APIKeyFormat.problem(with: String(decoding: key, as: UTF8.self)))
        #expect(problem.contains("checksum"))
    }

    // MARK: refused shapes

    @Test(arguments: ["dbaudit_prod_", "DBAUDIT_LIVE_", "dbaudit-live_", "xbaudit_test_", "dbaudit_live-"])
    func wrongPrefixIsRefusedEvenWithAValidChecksum(prefix: String) throws {
        let token = withValidChecksum(Array(prefix.utf8) + randomPart())
        #expect(token.utf8.count == 51)
        let problem = try #require(APIKeyFormat.problem(with: token))
        #expect(problem.contains("prefix"))
        #expect(!APIKeyFormat.hasAPIKeyPrefix(token))
    }

    @Test func wrongLengthIsRefused() throws {
        let key = APIKeyFormat.generate(test: false)
        let cases: [String] = [
            "",
            "dbaudit_live_",
            String(key.dropLast()),
            key + "0",
            key + key,
            // Checksums that are right for a shorter or longer random part.
            withValidChecksum(Array("dbaudit_live_".utf8) + randomPart(31)),
            withValidChecksum(Array("dbaudit_test_".utf8) + randomPart(33)),
        ]
        for token in cases {
            let problem = try #require(APIKeyFormat.problem(with: token), "\(token)")
            #expect(problem.contains("length"), "\(token): \(problem)")
        }
    }

    @Test(arguments: ["-", "_", " ", "+", "/", "=", ".", "~", "\u{7F}", "\t"])
    func nonBase62CharacterIsRefusedEvenWithAValidChecksum(character: String) throws {
        for position in [0, 15, APIKeyFormat.randomLength - 1] {
            var random = randomPart()
            random[position] = Array(character.utf8)[0]
            let token = withValidChecksum(Array("dbaudit_live_".utf8) + random)
            #expect(token.utf8.count == 51)
            let problem = try #require(APIKeyFormat.problem(with: token), "\(token)")
            #expect(problem.contains("base62"), "\(problem)")
        }
    }

    @Test(arguments: ["é", "ÿ", "\u{0301}"])
    func nonASCIICharacterIsRefused(character: String) throws {
        let encoded = Array(character.utf8)
        #expect(encoded.count == 2)
        // Two base62 characters replaced by one two-byte character: the UTF-8 length stays 51.
        var random = randomPart()
        random.replaceSubrange(10..<12, with: encoded)
        let token = withValidChecksum(Array("dbaudit_test_".utf8) + random)
        #expect(token.utf8.count == 51)
        let problem = try #require(APIKeyFormat.problem(with: token))
        #expect(problem.contains("base62"))
    }

    @Test func nonASCIIInTheChecksumIsRefused() {
        // "é" in place of the last two checksum characters.
        let key = APIKeyFormat.generate(test: false)
        let token = String(key.dropLast(2)) + "é"
        #expect(token.utf8.count == 51)
        #expect(APIKeyFormat.problem(with: token) != nil)
    }

    @Test func nulIsRefused() throws {
        let key = APIKeyFormat.generate(test: false)
        // Trailing NUL: a C-string-minded parser would drop it and see a valid key.
        #expect(APIKeyFormat.problem(with: key + "\u{0}") != nil)
        // NUL in place of the last character, and NUL inside with a matching checksum.
        #expect(APIKeyFormat.problem(with: String(key.dropLast()) + "\u{0}") != nil)
        var random = randomPart()
        random[5] = 0
        let token = withValidChecksum(Array("dbaudit_live_".utf8) + random)
        let problem = try #require(APIKeyFormat.problem(with: token))
        #expect(problem.contains("base62"))
    }

    @Test func hasAPIKeyPrefixOnlyRecognisesTheTwoPrefixes() {
        #expect(APIKeyFormat.hasAPIKeyPrefix("dbaudit_live_x"))
        #expect(APIKeyFormat.hasAPIKeyPrefix("dbaudit_test_"))
        #expect(!APIKeyFormat.hasAPIKeyPrefix("dbaudit_live"))
        #expect(!APIKeyFormat.hasAPIKeyPrefix("Dbaudit_live_x"))
        #expect(!APIKeyFormat.hasAPIKeyPrefix("eyJhbGciOiJIUzI1NiJ9.e30.x"))
        #expect(!APIKeyFormat.hasAPIKeyPrefix(""))
    }

    // MARK: CRC32

    @Test func crc32MatchesTheStandardCheckValues() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([UInt8]()) == 0)
        #expect(CRC32.checksum(Array("The quick brown fox jumps over the lazy dog".utf8)) == 0x414F_A339)
        #expect(CRC32.checksum([0]) == 0xD202_EF8D)
    }

    @Test func checksumEncodesTheCRCInSixBase62Digits() {
        let body = Array("dbaudit_live_".utf8) + randomPart()
        let digits = APIKeyFormat.checksum(of: body[...])
        #expect(digits.count == APIKeyFormat.checksumLength)
        #expect(digits.allSatisfy(isBase62))
        // Decoding the digits gives back the CRC32 (62^6 > 2^32, so nothing is lost).
        let decoded = digits.reduce(UInt64(0)) { $0 * 62 + UInt64(base62.firstIndex(of: $1)!) }
        #expect(decoded == UInt64(CRC32.checksum(body)))
    }
}
