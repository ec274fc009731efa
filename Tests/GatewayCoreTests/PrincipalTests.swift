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

@Suite struct PrincipalDerivedValuesTests {
    /// The bucket key as it was computed on every request before it was kept with the
    /// principal.
    private func referenceKey(_ principal: Principal) -> String {
        if let keyID = principal.keyID { return "key:" + keyID }
        if let clientID = principal.clientID, principal.kind == .oauth {
            if principal.issuedElsewhere { return "client:" + (principal.issuer ?? "external") + " " + clientID }
            return "client:" + clientID
        }
        if let issuer = principal.issuer { return principal.kind.rawValue + ":" + issuer + " " + principal.subject }
        return principal.kind.rawValue + ":" + principal.subject
    }

    /// Setting any property after the principal was made (as the authenticators set the
    /// issuer) leaves the kept bucket key and identity fields as if made with it.
    @Test func theKeptValuesFollowEverySetProperty() {
        var principal = Principal(subject: "usr_1", kind: .oauth, scopes: ["read:logs"], clientID: "cid")
        var changes: [(inout Principal) -> Void] = [
            { $0.issuer = "https://idp.example" }, { $0.issuedElsewhere = true }, { $0.issuer = nil },
            { $0.issuedElsewhere = false }, { $0.kind = .jwt }, { $0.issuer = "https://login.example" },
            { $0.subject = "usr_2" }, { $0.clientID = nil }, { $0.kind = .oauth }, { $0.clientID = "cid_2" },
            { $0.keyID = "key_1" }, { $0.kind = .apiKey }, { $0.scopes = ["admin"] }, { $0.keyID = nil },
        ]
        changes += changes.reversed()
        for change in changes {
            change(&principal)
            #expect(principal.rateLimitKey == referenceKey(principal))
            let rebuilt = IdentityHeaders(of: principal)
            #expect(principal.identityHeaders == rebuilt)
            #expect(principal.identityHeaders.fields.map(\.value) == rebuilt.fields.map(\.value))
        }
    }

    /// Copies share their storage until one is changed: a principal is still a value,
    /// equal to another with the same properties (every one of them counts).
    @Test func aPrincipalIsAValue() {
        func make() -> Principal {
            var principal = Principal(
                subject: "usr_1",
                kind: .jwt,
                scopes: ["read:logs"],
                clientID: "cid",
                expiresAt: 9,
                rateLimit: "gold"
            )
            principal.issuer = "https://idp.example"
            return principal
        }
        let original = make()
        #expect(original == make() && original.hashValue == make().hashValue)
        var copy = original
        copy.scopes.append("admin")
        #expect(original.scopes == ["read:logs"] && copy.scopes == ["read:logs", "admin"])
        #expect(copy != original)
        #expect(copy.identityHeaders.fields[1].value == "read:logs admin")
        #expect(original.identityHeaders.fields[1].value == "read:logs")
        let changes: [(inout Principal) -> Void] = [
            { $0.subject = "usr_2" }, { $0.kind = .oauth }, { $0.scopes = [] }, { $0.clientID = nil },
            { $0.keyID = "k" }, { $0.expiresAt = 10 }, { $0.rateLimit = nil }, { $0.issuer = nil },
            { $0.issuedElsewhere = true },
        ]
        for change in changes {
            var changed = make()
            change(&changed)
            #expect(changed != original)
            #expect(Set([changed, original]).count == 2)
        }
    }
}
