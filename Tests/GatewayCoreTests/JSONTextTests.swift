import GatewayCore
import Testing

@Suite struct JSONTextTests {
    @Test func plainTextIsOnlyQuoted() {
        #expect(JSONText.quoted("hello world") == #""hello world""#)
        #expect(JSONText.quoted("") == #""""#)
    }

    @Test func escapesQuotesAndBackslashes() {
        #expect(JSONText.quoted(#"say "hi""#) == #""say \"hi\"""#)
        #expect(JSONText.quoted(#"C:\dir\file"#) == #""C:\\dir\\file""#)
        #expect(JSONText.quoted(#"\""#) == #""\\\"""#)
    }

    @Test func escapesCommonControlCharactersShortForm() {
        #expect(JSONText.quoted("a\nb") == #""a\nb""#)
        #expect(JSONText.quoted("a\rb") == #""a\rb""#)
        #expect(JSONText.quoted("a\tb") == #""a\tb""#)
    }

    @Test func escapesOtherControlCharactersAsUnicode() {
        #expect(JSONText.quoted("\u{0}") == #""\u0000""#)
        #expect(JSONText.quoted("\u{1}") == #""\u0001""#)
        #expect(JSONText.quoted("\u{8}") == #""\u0008""#)
        #expect(JSONText.quoted("\u{C}") == #""\u000c""#)
        #expect(JSONText.quoted("\u{1B}[31m") == #""\u001b[31m""#)
        #expect(JSONText.quoted("\u{1F}") == #""\u001f""#)
        #expect(JSONText.quoted("\u{7F}") == #""\u007f""#)
    }

    @Test func everyControlCharacterIsEscaped() {
        for value in UInt32(0)..<0x20 {
            let scalar = Unicode.Scalar(value)!
            let quoted = JSONText.quoted(String(Character(scalar)))
            #expect(quoted.unicodeScalars.allSatisfy { $0.value >= 0x20 }, "U+\(value) left raw")
            #expect(quoted.hasPrefix("\"\\") && quoted.hasSuffix("\""))
        }
    }

    @Test func escapesLineAndParagraphSeparators() {
        #expect(JSONText.quoted("a\u{2028}b") == #""a\u2028b""#)
        #expect(JSONText.quoted("a\u{2029}b") == #""a\u2029b""#)
    }

    @Test func keepsNonASCIIText() {
        #expect(JSONText.quoted("caf\u{E9} \u{1F600} \u{4E2D}") == "\"caf\u{E9} \u{1F600} \u{4E2D}\"")
        // JSON needs no escape for "/" or for C1 controls (U+0080...U+009F).
        #expect(JSONText.quoted("a/b") == #""a/b""#)
        #expect(JSONText.quoted("\u{85}") == "\"\u{85}\"")
    }

    @Test func appendQuotedAppendsToExistingText() {
        var out = "{\"k\":"
        JSONText.appendQuoted("v\"", to: &out)
        out += "}"
        #expect(out == #"{"k":"v\""}"#)
    }

    @Test func hostileValueCannotBreakOutOfTheDocument() {
        let hostile = "x\",\"admin\":true,\"y\":\"\n\u{2028}\\"
        let quoted = JSONText.quoted(hostile)
        // Every quote inside is preceded by a backslash that is itself not escaped.
        let inner = quoted.dropFirst().dropLast()
        var escaped = false
        for character in inner {
            if escaped {
                escaped = false
                continue
            }
            if character == "\\" {
                escaped = true
                continue
            }
            #expect(character != "\"")
            #expect(character != "\n")
            #expect(character != "\u{2028}")
        }
        #expect(!escaped)
    }
}
