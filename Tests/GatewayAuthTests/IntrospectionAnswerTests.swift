import GatewayCore
import Testing

@testable import GatewayAuth

/// RFC 7662 answers read strictly: what is a verdict on the token (active, inactive) and
/// what is a failure of the endpoint (anything not well-formed).
@Suite struct IntrospectionAnswerTests {
    private static let now: Int64 = 1_700_000_000

    private func parse(_ json: String, status: Int = 200) -> Result<IntrospectionAnswer, IntrospectionAnswer.Failure> {
        Result { () throws(IntrospectionAnswer.Failure) in
            try IntrospectionAnswer.parse(status: status, body: Array(json.utf8), now: Self.now)
        }
    }

    private func isFailure(_ result: Result<IntrospectionAnswer, IntrospectionAnswer.Failure>) -> Bool {
        if case .failure = result { return true }
        return false
    }

    @Test func activeAnswer() throws {
        let answer = try parse(
            #"{"active":true,"sub":"u-1","client_id":"app","scope":"read:logs  admin","iss":"https://as.test","exp":1700000600,"iat":1699999000,"extra":{"x":[1]}}"#
        ).get()
        #expect(
            answer
                == .active(
                    subject: "u-1",
                    clientID: "app",
                    scopes: ["read:logs", "admin"],
                    issuer: "https://as.test",
                    expiresAt: 1_700_000_600
                )
        )
        // A client's own token (no sub) is named as a client, never as a user id.
        let machine = try parse(#"{"active":true,"client_id":"svc","exp":1700000600}"#).get()
        #expect(
            machine
                == .active(subject: "client:svc", clientID: "svc", scopes: [], issuer: nil, expiresAt: 1_700_000_600)
        )
        // Fractional NumericDate.
        #expect(try parse(#"{"active":true,"sub":"u","exp":1700000600.5}"#).get() != .inactive(reason: ""))
    }

    @Test func inactiveVerdicts() throws {
        let cases = [
            #"{"active":false}"#,
            #"{"active":false,"sub":7}"#,  // nothing else matters once inactive
            #"{"active":true,"sub":"u","exp":1700000000}"#,  // exp == now: expired
            #"{"active":true,"sub":"u","exp":1600000000}"#,
            #"{"active":true,"sub":"u"}"#,  // no exp: its use cannot be bounded
            #"{"active":true,"sub":"u","exp":1700000600,"nbf":1700000100}"#,
            #"{"active":true,"sub":"u","exp":1700000600,"token_type":"refresh_token"}"#,
        ]
        for json in cases {
            guard case .inactive = try parse(json).get() else {
                Issue.record("\(json) was not inactive")
                continue
            }
        }
    }

    @Test func malformedAnswersAreFailuresNotVerdicts() {
        let cases: [(String, Int)] = [
            (#"{"active":true,"sub":"u","exp":1700000600}"#, 500),
            (#"{"active":true,"sub":"u","exp":1700000600}"#, 401),
            ("<html>", 200),
            ("", 200),
            ("[]", 200),
            (#"{"active":"true","sub":"u","exp":1700000600}"#, 200),
            (#"{"sub":"u","exp":1700000600}"#, 200),
            (#"{"active":true,"active":false}"#, 200),  // duplicate members
            (#"{"active":true,"sub":"u","exp":"soon"}"#, 200),
            (#"{"active":true,"sub":7,"exp":1700000600}"#, 200),
            (#"{"active":true,"sub":"","exp":1700000600}"#, 200),
            (#"{"active":true,"exp":1700000600}"#, 200),  // names nobody
            (#"{"active":true,"sub":"u","exp":1700000600,"scope":["read:logs"]}"#, 200),
            (#"{"active":true,"sub":"u","exp":1700000600,"scope":"read:logs,admin"}"#, 200),
            (#"{"active":true,"sub":"u","exp":1700000600,"scope":"a\tb"}"#, 200),
            (#"{"active":true,"sub":"u","exp":1700000600} trailing"#, 200),
            (#"{"active":true,"sub":"\#(String(repeating: "x", count: 257))","exp":1700000600}"#, 200),
        ]
        for (json, status) in cases {
            #expect(isFailure(parse(json, status: status)), "\(status) \(json)")
        }
        let tooLarge =
            "{\"active\":false,\"pad\":\"" + String(repeating: "x", count: IntrospectionAnswer.maximumBytes) + "\"}"
        #expect(isFailure(parse(tooLarge)))
        let manyScopes = (0..<65).map { "s\($0)" }.joined(separator: " ")
        #expect(isFailure(parse(#"{"active":true,"sub":"u","exp":1700000600,"scope":"\#(manyScopes)"}"#)))
    }

    @Test func formEncodingOfCredentials() {
        #expect(FormEncoding.encode("gateway client") == "gateway+client")
        #expect(FormEncoding.encode("s3cret:with/odd&chars") == "s3cret%3Awith%2Fodd%26chars")
        #expect(FormEncoding.encode("a-b.c_d*~é") == "a-b.c_d*%7E%C3%A9")
    }
}
