import GatewayCore
import Testing

@Suite struct PrincipalRateLimitKeyTests {
    @Test func eachKindOfCredentialHasABucketOfItsOwn() {
        #expect(Principal(subject: "ops", kind: .apiKey, scopes: [], keyID: "key_1").rateLimitKey == "key:key_1")
        #expect(
            Principal(subject: "client:cid_a", kind: .oauth, scopes: [], clientID: "cid_a").rateLimitKey
                == "client:cid_a"
        )
        var user = Principal(subject: "usr_1", kind: .jwt, scopes: [])
        user.issuer = "https://login.example"
        #expect(user.rateLimitKey == "jwt:https://login.example usr_1")
    }

    @Test func anotherServersClientNeverSharesTheBucketOfOurClientWithTheSameID() {
        let ours = Principal(subject: "client:reports", kind: .oauth, scopes: [], clientID: "reports")
        var theirs = Principal(subject: "svc", kind: .oauth, scopes: [], clientID: "reports")
        theirs.issuer = "https://idp.example"
        theirs.issuedElsewhere = true
        #expect(theirs.rateLimitKey == "client:https://idp.example reports")
        #expect(theirs.rateLimitKey != ours.rateLimitKey)
    }
}
