import Foundation
import Testing

@testable import GatewayStore

@Suite struct APIKeyRecordTests {
    private let oldRecord = #"""
        {"id":"key_1","name":"ci","scopes":["read:logs"],"owner":"alice","created_at":1700000000,
         "expires_at":null,"revoked":false,"last4":"abcd","environment":"live"}
        """#

    @Test func recordsWrittenBeforeRateLimitsStillDecode() throws {
        let record = try JSONDecoder().decode(APIKeyRecord.self, from: Data(oldRecord.utf8))
        #expect(record.rateLimit == nil)
        #expect(record.id == "key_1")
        // And nil is not written out.
        let encoded = String(decoding: try JSONEncoder().encode(record), as: UTF8.self)
        #expect(!encoded.contains("rate_limit"))
    }

    @Test func aPolicyNameRoundTripsAsRateLimit() throws {
        var record = try JSONDecoder().decode(APIKeyRecord.self, from: Data(oldRecord.utf8))
        record.rateLimit = "gold"
        let encoded = try JSONEncoder().encode(record)
        #expect(String(decoding: encoded, as: UTF8.self).contains(#""rate_limit":"gold""#))
        #expect(try JSONDecoder().decode(APIKeyRecord.self, from: encoded) == record)
    }

    /// Redis is hostile until parsed: a record whose scopes are not RFC 6749 scope tokens
    /// is not a record the gateway wrote, and does not decode (the store reports it as
    /// corrupt; the authenticator answers 401 and logs it).
    @Test(arguments: [#""x\tadmin""#, #""read:databases,admin""#, #""x admin""#, #""""#, #""a\"b""#, #""caf\u00e9""#])
    func scopesThatAreNotScopeTokensDoNotDecode(scope: String) {
        let text = oldRecord.replacingOccurrences(of: #""read:logs""#, with: #""read:logs","# + scope)
        #expect(text != oldRecord)
        #expect(throws: (any Error).self) { try JSONDecoder().decode(APIKeyRecord.self, from: Data(text.utf8)) }
    }
}
