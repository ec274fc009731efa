import GatewayAuth
import Testing

/// `JSONValue.jsonText`: the writer of the documents the gateway signs and publishes.
@Suite struct JSONValueWritingTests {
    @Test func compactTextInMemberOrder() {
        let object = JSONObject(members: [
            ("b", .integer(-7)), ("a", .array([.bool(true), .bool(false), .null])), ("n", .number(1.5)),
            ("o", .object(JSONObject(members: [("k", .string("v"))]))), ("e", .array([])),
        ])
        #expect(object.jsonText == #"{"b":-7,"a":[true,false,null],"n":1.5,"o":{"k":"v"},"e":[]}"#)
        #expect(JSONValue.number(.infinity).jsonText == "null")
    }

    @Test func hostileStringsCannotBreakTheDocument() throws {
        let hostile = "\"},\"admin\":true,\"x\":\"\\\u{0}\n\u{2028}é"
        let object = JSONObject(members: [(hostile, .string(hostile))])
        let parsed = try StrictJSON.parseObject(Array(object.jsonText.utf8))
        #expect(parsed == object)
        #expect(parsed.names == [hostile])
    }

    @Test func whatIsWrittenParsesBackToTheSameValue() throws {
        let value = JSONValue.object(
            JSONObject(members: [
                ("iat", .integer(Int64.max)), ("scope", .string("read:databases write:alerts")),
                ("aud", .array([.string("one"), .string("two")])),
            ])
        )
        #expect(try StrictJSON.parse(Array(value.jsonText.utf8)) == value)
    }
}
