import Testing

@testable import GatewayAuth

/// The extraction the gateway used before `BearerCredential` (an Array of the header's
/// bytes, a mapped scheme): the oracle the one-pass parser must agree with on every input.
private func referenceBearerToken(_ header: String) -> String? {
    let bytes = Array(header.utf8)
    guard bytes.count > 7, bytes.count <= 8192 else { return nil }
    let scheme = bytes[0..<6].map { $0 | 0x20 }
    guard scheme == Array("bearer".utf8), bytes[6] == UInt8(ascii: " ") else { return nil }
    var start = 7
    while start < bytes.count, bytes[start] == UInt8(ascii: " ") { start += 1 }
    let token = bytes[start...]
    guard !token.isEmpty else { return nil }
    for byte in token {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"), UInt8(ascii: "+"), UInt8(ascii: "/"), UInt8(ascii: "="):
            continue
        default:
            return nil
        }
    }
    return String(decoding: token, as: UTF8.self)
}

/// What the authenticator judged a token to be before the shape came from the same pass.
private func referenceShape(_ token: String) -> BearerCredential.Shape {
    if APIKeyFormat.hasAPIKeyPrefix(token) { return .apiKey }
    if OpaqueAccessTokenFormat.hasPrefix(token) { return .opaqueAccessToken }
    return JWTVerifier.looksLikeJWT(token) ? .threeParts : .other
}

private let token68: String = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/="

@Suite struct BearerCredentialTests {
    @Test(arguments: ["Bearer", "bearer", "BEARER", "bEaReR", "BeArEr"])
    func theSchemeIsCaseInsensitive(scheme: String) {
        #expect(BearerCredential.parse("\(scheme) abc")?.token == "abc")
    }

    @Test func everyToken68CharacterIsAccepted() {
        #expect(BearerCredential.parse("Bearer \(token68)")?.token == token68)
        for character in token68 {
            #expect(BearerCredential.parse("Bearer x\(character)y")?.token == "x\(character)y")
        }
    }

    @Test func everyOtherByteIsRefused() {
        let allowed = Set(token68.utf8)
        for byte in UInt8(0)...UInt8(0x7F) where !allowed.contains(byte) {
            let header = "Bearer ab" + String(decoding: [byte], as: UTF8.self) + "cd"
            #expect(BearerCredential.parse(header) == nil, "byte \(byte)")
        }
        #expect(BearerCredential.parse("Bearer abcé") == nil)
        #expect(BearerCredential.parse("Bearer abc\u{0}") == nil)
    }

    @Test(arguments: [
        "", "Bearer", "Bearer ", "Bearer  ", "Bearer   ", "Bearerabc", "Bearer\tabc", "Basic abc", "Bearer_abc",
        "Bearxr abc", "Bearer abc def", "Bearer abc ", " Bearer abc", "Bearer\u{0}abc", "Bëarer abc",
        "Token abc", "Bearer: abc", "Bearer\u{A0}abc",
    ])
    func malformedHeadersAreRefused(header: String) {
        #expect(BearerCredential.parse(header) == nil)
        #expect(referenceBearerToken(header) == nil)
    }

    @Test func spacesBeforeTheTokenAreSkippedAsBefore() {
        #expect(BearerCredential.parse("Bearer   abc")?.token == "abc")
    }

    @Test func theLengthBoundIsKept() {
        let longest = "Bearer " + String(repeating: "a", count: 8192 - 7)
        #expect(BearerCredential.parse(longest)?.token.utf8.count == 8192 - 7)
        #expect(BearerCredential.parse(longest + "a") == nil)
    }

    /// The token's bytes are judged eight at a time with a tail byte by byte: a refused
    /// byte or a dot at every offset of long tokens (every position in a step and in the
    /// tail) is judged as the reference does.
    @Test func everyOffsetOfALongTokenIsJudged() {
        let refused: [UInt8] = [0x00, 0x20, 0x2C, 0x3A, 0x40, 0x5B, 0x60, 0x7B, 0x7F, 0x80, 0xC3, 0xFF]
        for length in [15, 16, 17, 31, 64, 807] {
            let base = Array(repeating: UInt8(ascii: "a"), count: length)
            for offset in 0..<length {
                var dotted = base
                dotted[offset] = UInt8(ascii: ".")
                let header = "Bearer " + String(decoding: dotted, as: UTF8.self)
                #expect(BearerCredential.parse(header)?.shape == .other)
                var threeParts = dotted
                threeParts[(offset + length / 2) % length] = UInt8(ascii: ".")
                let expected: BearerCredential.Shape? =
                    threeParts.filter { $0 == UInt8(ascii: ".") }.count == 2 ? .threeParts : .other
                #expect(
                    BearerCredential.parse("Bearer " + String(decoding: threeParts, as: UTF8.self))?.shape == expected
                )
                for byte in refused {
                    var bytes = Array("Bearer ".utf8) + base
                    bytes[7 + offset] = byte
                    let parsed = bytes.withUnsafeBufferPointer { BearerCredential.parse(bytes: $0) }
                    // A space before the token is skipped, as before: only a first-byte
                    // space leaves a token.
                    let expected = byte == 0x20 && offset == 0 ? String(repeating: "a", count: length - 1) : nil
                    #expect(parsed?.token == expected, "byte \(byte) at \(offset) of \(length)")
                }
            }
        }
    }

    /// A header of the longest length made only of refused bytes or only of dots: the
    /// counts of both stay apart.
    @Test func theLongestHeaderOfRefusedBytesOrDotsIsJudged() {
        let length = BearerCredential.maximumHeaderLength - 7
        for byte: UInt8 in [0xFF, 0x80, 0x00, 0x20 + 1] {
            let bytes = Array("Bearer ".utf8) + Array(repeating: byte, count: length)
            #expect(bytes.withUnsafeBufferPointer { BearerCredential.parse(bytes: $0) } == nil, "byte \(byte)")
        }
        let dots = "Bearer " + String(repeating: ".", count: length)
        #expect(
            BearerCredential.parse(dots)
                == BearerCredential(token: String(repeating: ".", count: length), shape: .other)
        )
        let threeDots = "Bearer " + String(repeating: "a", count: length - 2) + ".."
        #expect(BearerCredential.parse(threeDots)?.shape == .threeParts)
    }

    @Test func theShapeComesFromTheSamePass() {
        #expect(BearerCredential.parse("Bearer dbaudit_live_x")?.shape == .apiKey)
        #expect(BearerCredential.parse("Bearer dbaudit_test_x")?.shape == .apiKey)
        #expect(BearerCredential.parse("Bearer dbaudit_test_")?.shape == .apiKey)
        #expect(BearerCredential.parse("Bearer dbaudit_test")?.shape == .other)
        #expect(BearerCredential.parse("Bearer dbaudit_at_x")?.shape == .opaqueAccessToken)
        #expect(BearerCredential.parse("Bearer dbaudit_at_a.b.c")?.shape == .opaqueAccessToken)
        #expect(BearerCredential.parse("Bearer dbaudit_live_a.b.c")?.shape == .apiKey)
        #expect(BearerCredential.parse("Bearer a.b.c")?.shape == .threeParts)
        #expect(BearerCredential.parse("Bearer ..")?.shape == .threeParts)
        #expect(BearerCredential.parse("Bearer a.b")?.shape == .other)
        #expect(BearerCredential.parse("Bearer a.b.c.d")?.shape == .other)
        #expect(BearerCredential.parse("Bearer DBAUDIT_LIVE_x")?.shape == .other)
    }

    @Test func aBridgedOrSharedStringParsesAlike() {
        let header = String("xxBearer a.b.c".dropFirst(2))
        #expect(BearerCredential.parse(header) == BearerCredential(token: "a.b.c", shape: .threeParts))
        #expect(Authenticator.bearerToken(header) == "a.b.c")
    }

    /// Generated headers from the pieces that matter (scheme spellings, separators, token
    /// bytes at the edges of the alphabet, prefixes): accepted with the same token and
    /// shape as before, or refused by both.
    @Test func agreesWithThePreviousExtractionOnGeneratedHeaders() {
        let schemes = ["Bearer", "bearer", "BEARER", "Bearer:", "Beare", "Bearerr", "Bea rer", "Basic", "Bearer\u{1}"]
        let separators = ["", " ", "  ", "\t", " \t", "\u{0}"]
        let pieces = [
            "", "a", ".", "..", "a.b.c", "dbaudit_live_", "dbaudit_test_", "dbaudit_at_", "DBAUDIT_at_", "=", "+/",
            "~", " ", "\t", "\"", ",", "é", "\u{7F}", "@", "[", "`", "{", ":", "A-Z_09",
        ]
        var generator = SystemRandomNumberGenerator()
        var compared = 0
        for scheme in schemes {
            for separator in separators {
                for first in pieces {
                    for _ in 0..<12 {
                        var header = scheme + separator + first
                        for _ in 0..<Int.random(in: 0...4, using: &generator) {
                            header += pieces.randomElement(using: &generator)!
                        }
                        let parsed = BearerCredential.parse(header)
                        let expected = referenceBearerToken(header)
                        #expect(parsed?.token == expected, "\(Array(header.utf8))")
                        if let parsed, let expected {
                            #expect(parsed.shape == referenceShape(expected))
                        }
                        compared += 1
                    }
                }
            }
        }
        #expect(compared == schemes.count * separators.count * pieces.count * 12)
    }
}
