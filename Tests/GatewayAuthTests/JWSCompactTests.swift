import GatewayCrypto
import GatewayTestSupport
import Testing

@testable import GatewayAuth

/// `JWSCompact.parse`: the compact form, header rules and size limits.
@Suite struct JWSCompactTests {
    private static let payload = b64(standardClaims())
    private static let signature = b64(Array(repeating: UInt8(7), count: 64))

    private func token(header: String) -> String {
        b64(header) + "." + Self.payload + "." + Self.signature
    }

    @Test func wellFormedTokenParses() throws {
        let jws = try JWSCompact.parse(
            token(
                header:
                    #"{"alg":"ES256","kid":"k1","typ":"at+jwt","jku":"https://evil/jwks","x5u":"https://evil","jwk":{"kty":"oct"},"x5c":["AA"]}"#
            ).utf8
        )
        #expect(jws.algorithm == .es256 && jws.keyID == "k1" && jws.type == "at+jwt")
        #expect(jws.signature == Array(repeating: 7, count: 64))
        #expect(
            jws.signingInput
                == Array(
                    (b64(
                        #"{"alg":"ES256","kid":"k1","typ":"at+jwt","jku":"https://evil/jwks","x5u":"https://evil","jwk":{"kty":"oct"},"x5c":["AA"]}"#
                    ) + "." + Self.payload).utf8
                )
        )
    }

    @Test(arguments: ["none", "None", "NONE", "nOnE", "none ", ""])
    func algNoneInAnyCaseIsRefused(alg: String) {
        #expect(parseFailure(token(header: "{\"alg\":\"\(alg)\"}")) == .unsupportedAlgorithm)
        #expect(parseFailure(b64("{\"alg\":\"\(alg)\"}") + "." + Self.payload + ".") == .unsupportedAlgorithm)
    }

    @Test(arguments: ["HS1", "RS1", "ES512", "ES256K", "PS1", "Ed25519", "EdDSA ", "rs256", "A128KW", "dir"])
    func unknownAlgorithmsAreRefused(alg: String) {
        #expect(parseFailure(token(header: "{\"alg\":\"\(alg)\"}")) == .unsupportedAlgorithm)
    }

    @Test func algMustBeAString() {
        for header in [#"{}"#, #"{"alg":null}"#, #"{"alg":256}"#, #"{"alg":["RS256"]}"#, #"{"kid":"k"}"#] {
            #expect(isMalformed(parseFailure(token(header: header))), "\(header)")
        }
    }

    @Test func critIsRefusedWhateverItSays() {
        for crit in [#"["exp"]"#, #"[]"#, #"["b64"]"#, #""x""#, "null"] {
            let failure = parseFailure(token(header: "{\"alg\":\"RS256\",\"crit\":\(crit)}"))
            #expect(isMalformed(failure), "crit \(crit): \(String(describing: failure))")
        }
    }

    @Test func segmentCount() {
        let header = b64(#"{"alg":"RS256"}"#)
        for text in [
            header + "." + Self.payload,
            header + "." + Self.payload + "." + Self.signature + "." + Self.signature,
            header + "." + Self.payload + "." + Self.signature + ".",
            header, "", ".", "..", "...",
        ] {
            #expect(isMalformed(parseFailure(text)), "\(text.prefix(40))")
        }
    }

    @Test func emptyParts() throws {
        let header = b64(#"{"alg":"RS256"}"#)
        #expect(isMalformed(parseFailure("." + Self.payload + "." + Self.signature)))
        // An empty payload or signature decodes (to no bytes); it can never verify.
        let emptyPayload = try JWSCompact.parse((header + ".." + Self.signature).utf8)
        #expect(emptyPayload.payload.isEmpty)
        let emptySignature = try JWSCompact.parse((header + "." + Self.payload + ".").utf8)
        #expect(emptySignature.signature.isEmpty)
        let key = VerificationKey(keyID: nil, algorithm: .rs256, material: .asymmetric(TestKeys.rsa))
        #expect(!emptySignature.verify(with: [key]))
    }

    @Test func paddingAndNonAlphabetCharactersAreRefused() {
        let header = b64(#"{"alg":"RS256"}"#)  // 20 characters, no padding needed
        let padded = b64(#"{"alg":"ES256","k":12}"#)  // needs padding
        #expect(padded.utf8.count % 4 != 0)
        for text in [
            padded + "==." + Self.payload + "." + Self.signature,
            header + "." + Self.payload + "=." + Self.signature,
            header + "." + Self.payload + "." + Self.signature + "=",
            header + "." + Self.payload + "." + Self.signature + "==",
            header + "." + Self.payload.replacingOccurrences(of: "-", with: "+") + "x+/A." + Self.signature,
            header + " ." + Self.payload + "." + Self.signature,
            header + "." + Self.payload + "." + Self.signature + "\n",
            header + "." + Self.payload + ".%3D",
        ] {
            #expect(isMalformed(parseFailure(text)), "\(text.suffix(30))")
        }
    }

    @Test func nonCanonicalTrailingBitsAreRefused() throws {
        // A 64-byte signature is 86 characters; the last one carries 2 unused bits.
        let canonical = Self.signature
        #expect(canonical.utf8.count == 86)
        let last = canonical.last!
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        let index = alphabet.firstIndex(of: last)!
        let header = b64(#"{"alg":"ES256"}"#)
        #expect(parseFailure(header + "." + Self.payload + "." + canonical) == nil)
        for flip in 1...3 {
            let changed = String(canonical.dropLast()) + String(alphabet[index ^ flip])
            #expect(isMalformed(parseFailure(header + "." + Self.payload + "." + changed)), "\(changed.suffix(4))")
        }
        // The same in the header: {"alg":"ES256","k":12} ends in 2 unused bits.
        let header2 = b64(#"{"alg":"ES256","k":12}"#)
        #expect(parseFailure(header2 + "." + Self.payload + "." + canonical) == nil)
        let headerLast = alphabet.firstIndex(of: header2.last!)!
        let header2Changed = String(header2.dropLast()) + String(alphabet[headerLast ^ 1])
        #expect(isMalformed(parseFailure(header2Changed + "." + Self.payload + "." + canonical)))
    }

    @Test func duplicateHeaderMembersAreRefused() {
        for header in [
            #"{"alg":"RS256","alg":"HS256"}"#,
            #"{"alg":"RS256","kid":"a","kid":"b"}"#,
            #"{"alg":"RS256","\u0061lg":"RS256"}"#,
            #"{"alg":"RS256","typ":"JWT","typ":"at+jwt"}"#,
        ] {
            #expect(isMalformed(parseFailure(token(header: header))), "\(header)")
        }
    }

    @Test func headerNestingIsBounded() {
        // maxDepth 4 for the header: the object itself plus three nested levels.
        let ok = #"{"alg":"RS256","x":{"y":{"z":[]}}}"#
        #expect(parseFailure(token(header: ok)) == nil)
        let deep = #"{"alg":"RS256","x":{"y":{"z":[[]]}}}"#
        #expect(isMalformed(parseFailure(token(header: deep))))
        let veryDeep =
            "{\"alg\":\"RS256\",\"x\":" + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)
            + "}"
        #expect(isMalformed(parseFailure(token(header: veryDeep))))
    }

    @Test func oversizeTokenAndHeaderAreRefused() {
        let header = b64(#"{"alg":"RS256"}"#)
        let room = JWSCompact.maxTokenBytes - header.utf8.count - Self.signature.utf8.count - 2
        let fits = header + "." + String(repeating: "A", count: room - room % 4) + "." + Self.signature
        #expect(fits.utf8.count <= JWSCompact.maxTokenBytes)
        #expect(parseFailure(fits) == nil)
        let tooLong = header + "." + String(repeating: "A", count: room + 4 - room % 4) + "." + Self.signature
        #expect(tooLong.utf8.count > JWSCompact.maxTokenBytes)
        #expect(isMalformed(parseFailure(tooLong)))
        let bigHeader = "{\"alg\":\"RS256\",\"x\":\"" + String(repeating: "h", count: JWSCompact.maxHeaderBytes) + "\"}"
        #expect(isMalformed(parseFailure(token(header: bigHeader))))
    }

    @Test func kidAndTypMustBeShortStrings() {
        #expect(isMalformed(parseFailure(token(header: #"{"alg":"RS256","kid":1}"#))))
        #expect(isMalformed(parseFailure(token(header: #"{"alg":"RS256","kid":null}"#))))
        #expect(
            isMalformed(
                parseFailure(token(header: "{\"alg\":\"RS256\",\"kid\":\"\(String(repeating: "k", count: 257))\"}"))
            )
        )
        #expect(
            parseFailure(token(header: "{\"alg\":\"RS256\",\"kid\":\"\(String(repeating: "k", count: 256))\"}")) == nil
        )
        #expect(isMalformed(parseFailure(token(header: #"{"alg":"RS256","typ":["JWT"]}"#))))
    }

    @Test func headerMustBeAnObjectOfValidJSON() {
        for header in [
            #"["alg","RS256"]"#, #""RS256""#, #"{"alg":"RS256",}"#, #"{"alg":"RS256"} x"#, "{'alg':'RS256'}",
        ] {
            #expect(isMalformed(parseFailure(token(header: header))), "\(header)")
        }
        // Invalid UTF-8 inside the header.
        let bad = b64([UInt8](#"{"alg":"RS256","x":""#.utf8) + [0xC0, 0xAF] + [UInt8](#""}"#.utf8))
        #expect(isMalformed(parseFailure(bad + "." + Self.payload + "." + Self.signature)))
        // Raw non-ASCII bytes in the token text itself.
        #expect(
            isMalformed(
                parseFailure(
                    Array(b64(#"{"alg":"RS256"}"#).utf8) + [0xFF]
                        + Array(("." + Self.payload + "." + Self.signature).utf8)
                )
            )
        )
    }
}

/// `Base64URL`: strict, canonical, unpadded.
@Suite struct Base64URLTests {
    @Test func roundTripsEveryLength() {
        var generator = SplitMix64(seed: 42)
        for length in 0..<70 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let text = Base64URL.encode(bytes)
            #expect(!text.contains("=") && !text.contains("+") && !text.contains("/"))
            #expect(text.utf8.count % 4 != 1)
            #expect(Base64URL.decode(text) == bytes, "length \(length)")
        }
    }

    @Test func knownValues() {
        #expect(Base64URL.decode("") == [])
        #expect(Base64URL.encode([0xFB, 0xFF]) == "-_8")
        #expect(Base64URL.decode("-_8") == [0xFB, 0xFF])
        #expect(Base64URL.encode(Array("f".utf8)) == "Zg")
        #expect(Base64URL.encode(Array("fo".utf8)) == "Zm8")
        #expect(Base64URL.encode(Array("foo".utf8)) == "Zm9v")
    }

    @Test func refusesWhatIsNotCanonical() {
        for text in [
            "Zg==", "Zg=", "Zm8=", "Z", "Zm9vY", "Zh", "Zm9", "Zm+v", "Zm/v", "Zm 9v", "Zm9v\n", "Zm9v=", "Zg\u{0}",
        ] {
            // Zh and Zm9 have non-zero unused bits (Zg and Zm8 are canonical).
            #expect(Base64URL.decode(text) == nil, "\(text)")
        }
        #expect(Base64URL.decode("Zg") == Array("f".utf8))
        #expect(Base64URL.decode("Zm8") == Array("fo".utf8))
    }

    @Test func everyNonCanonicalLastCharacterIsRefused() {
        // For 1 trailing byte (2 chars) 4 bits are unused, for 2 bytes (3 chars) 2 bits.
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        for (index, character) in alphabet.enumerated() {
            #expect((Base64URL.decode("A" + String(character)) != nil) == (index & 0xF == 0), "A\(character)")
            #expect((Base64URL.decode("AA" + String(character)) != nil) == (index & 0x3 == 0), "AA\(character)")
        }
    }
}
