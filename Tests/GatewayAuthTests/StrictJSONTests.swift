import Testing

@testable import GatewayAuth

/// `StrictJSON`: RFC 8259 for hostile input.
@Suite struct StrictJSONTests {
    private func parses(_ text: String, maxDepth: Int = StrictJSON.defaultMaxDepth) -> JSONValue? {
        try? StrictJSON.parse(Array(text.utf8), maxDepth: maxDepth)
    }

    private func parses(bytes: [UInt8]) -> JSONValue? {
        try? StrictJSON.parse(bytes)
    }

    @Test func valuesParse() {
        #expect(parses(#"{"a":1,"b":-0,"c":1.5,"d":"x","e":[true,false,null],"f":{}}"#) != nil)
        #expect(parses("9223372036854775807") == .integer(.max))
        #expect(parses("-9223372036854775808") == .integer(.min))
        #expect(parses("9223372036854775808") == .number(9_223_372_036_854_775_808))
        #expect(parses("1E2") == .number(100))
        #expect(parses(" \t\r\n[ ] \n") == .array([]))
        #expect(parses(#""\u00e9\ud83d\ude00\/\b\f\n\r\t\"\\""#) == .string("é😀/\u{8}\u{C}\n\r\t\"\\"))
    }

    @Test func duplicateNamesAreRefusedAtEveryLevel() {
        #expect(parses(#"{"a":1,"a":1}"#) == nil)
        #expect(parses(#"{"a":1,"\u0061":2}"#) == nil)
        #expect(parses(#"{"x":{"a":1,"a":2}}"#) == nil)
        #expect(parses(#"[{"a":1,"a":2}]"#) == nil)
        #expect(parses(#"{"a":1,"A":2}"#) != nil)
    }

    @Test func trailingCommasAndGarbage() {
        for text in [
            #"{"a":1,}"#, "[1,]", "[1,,2]", "{,}", "[,1]", #"{"a":1} {}"#, "1 2", "[1]]", "{\"a\" 1}", "", " ",
        ] {
            #expect(parses(text) == nil, "\(text)")
        }
    }

    @Test func numbers() {
        for text in [
            "01", "-01", "00", "1.", ".5", "-", "+1", "1e", "1e+", "0x10", "NaN", "Infinity", "-Infinity", "1e400",
            "--1", "1.e3",
        ] {
            #expect(parses(text) == nil, "\(text)")
        }
        #expect(parses("0") == .integer(0))
        #expect(parses("-0") == .integer(0))
        #expect(parses("0.5e-3") == .number(0.0005))
        // A 65-character number is refused outright.
        #expect(parses("1" + String(repeating: "0", count: 64)) == nil)
    }

    @Test func depthLimit() {
        let nested = { (depth: Int) in String(repeating: "[", count: depth) + String(repeating: "]", count: depth) }
        #expect(parses(nested(16)) != nil)
        #expect(parses(nested(17)) == nil)
        #expect(parses(nested(4), maxDepth: 4) != nil)
        #expect(parses(nested(5), maxDepth: 4) == nil)
        #expect(
            parses(String(repeating: "{\"a\":", count: 100_000) + "1" + String(repeating: "}", count: 100_000)) == nil
        )
    }

    @Test func loneSurrogatesAreRefused() {
        for text in [
            #""\ud800""#, #""\udc00""#, #""\ud800x""#, #""\ud800\u0041""#, #""\ud800\ud800""#, #""\udfff\ud800""#,
            #""\ud83d\""#,
        ] {
            #expect(parses(text) == nil, "\(text)")
        }
        #expect(parses(#""\uD83D\uDE00""#) == .string("😀"))
    }

    @Test func invalidUTF8IsRefused() {
        let quote = UInt8(ascii: "\"")
        for bad: [UInt8] in [
            [0xFF], [0xC0, 0xAF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
            [0xC3], [0x80], [0xF0, 0x9F, 0x98],
        ] {
            #expect(parses(bytes: [quote] + bad + [quote]) == nil, "\(bad)")
            // Also in a member name.
            #expect(parses(bytes: Array("{\"".utf8) + bad + Array("\":1}".utf8)) == nil, "\(bad)")
        }
        #expect(parses(bytes: [quote, 0xC3, 0xA9, quote]) == .string("é"))
    }

    @Test func controlCharactersAndBadEscapes() {
        #expect(parses("\"a\nb\"") == nil)
        #expect(parses("\"a\u{0}b\"") == nil)
        #expect(parses("\"a\u{1F}b\"") == nil)
        #expect(parses(#""\x41""#) == nil)
        #expect(parses(#""\u00G1""#) == nil)
        #expect(parses(#""\u00""#) == nil)
        #expect(parses(#""\'""#) == nil)
        #expect(parses("\"abc") == nil)
        // DEL is not a control character for JSON.
        #expect(parses("\"\u{7F}\"") == .string("\u{7F}"))
    }

    @Test func literals() {
        for text in ["tru", "True", "nul", "falsey", "nulll", "t"] {
            #expect(parses(text) == nil, "\(text)")
        }
    }

    @Test func numericDates() {
        #expect(JSONValue.integer(5).numericDate == 5)
        #expect(JSONValue.number(5.9).numericDate == 5)
        #expect(JSONValue.number(-5.1).numericDate == -6)
        #expect(JSONValue.number(1e19).numericDate == nil)
        #expect(JSONValue.string("5").numericDate == nil)
        #expect(JSONValue.bool(true).numericDate == nil)
    }
}
