import Foundation
import GatewayCore
import GatewayStore
import GatewayTestSupport
import NIOCore
import NIOEmbedded
import Testing

@testable import GatewayAuth

private let admin = Principal(subject: "root", kind: .apiKey, scopes: ["admin"], keyID: "key_00000000000000aa")

/// Endpoints over the authenticator harness's store, so created keys can be used.
/// Users `usr_ann` and `usr_bob` exist in its session store (sessions of our issuer are
/// checked against them).
private final class EndpointsHarness {
    let auth: AuthHarness
    let endpoints: APIKeyEndpoints
    let users: InMemorySessionStore
    /// Calls the management rate limit saw, and its answer (nil: admitted).
    var admitted: [String] = []
    var refusal: GatewayError?

    init(maxKeysPerOwner: Int? = nil) {
        self.auth = AuthHarness()
        let service = APIKeyService(store: self.auth.store, hash: self.auth.authenticator.hash(apiKey:))
        let clock = self.auth.clock
        let sessions = InMemorySessionStore(eventLoop: self.auth.loop, data: InMemorySessionData())
        self.users = sessions
        for (id, email) in [("usr_ann", "ann@example.com"), ("usr_bob", "bob@example.com")] {
            _ = sessions.createUser(
                UserRecord(id: id, email: email, scopes: ["read:databases"], passwordHash: "x", createdAt: 0)
            )
        }
        var admit: ((Principal) -> EventLoopFuture<Void>)?
        let loop = self.auth.loop
        self.endpoints = APIKeyEndpoints(
            service: service,
            clock: clock.clock,
            sessionIssuer: "https://gw.test",
            sessions: sessions,
            maxKeysPerOwner: maxKeysPerOwner,
            admit: { principal in admit!(principal) }
        )
        admit = { [unowned self] principal in
            self.admitted.append(principal.subject)
            return self.refusal.map { loop.makeFailedFuture($0) } ?? loop.makeSucceededVoidFuture()
        }
    }

    var loop: EmbeddedEventLoop { self.auth.loop }

    func handle(
        _ method: String,
        _ path: String = APIKeyEndpoints.collectionPath,
        query: String? = nil,
        body: String = "",
        principal: Principal = admin
    ) -> EventLoopFuture<APIKeyEndpoints.Response> {
        self.endpoints.handle(
            method: method,
            normalizedPath: path,
            query: query,
            body: Array(body.utf8),
            principal: principal,
            eventLoop: self.loop
        )
    }

    func response(
        _ method: String,
        _ path: String = APIKeyEndpoints.collectionPath,
        query: String? = nil,
        body: String = "",
        principal: Principal = admin,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> APIKeyEndpoints.Response {
        try value(
            of: self.handle(method, path, query: query, body: body, principal: principal),
            on: self.loop,
            sourceLocation: sourceLocation
        )
    }

    func error(
        _ method: String,
        _ path: String = APIKeyEndpoints.collectionPath,
        query: String? = nil,
        body: String = "",
        principal: Principal = admin,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> GatewayError {
        let error = try failure(
            of: self.handle(method, path, query: query, body: body, principal: principal),
            on: self.loop,
            sourceLocation: sourceLocation
        )
        return try #require(error as? GatewayError, "not a GatewayError: \(error)", sourceLocation: sourceLocation)
    }

    /// Creates a key over HTTP and returns the parsed response document.
    func createKey(_ body: String = #"{"name":"ci","scopes":["read:databases"]}"#) throws -> [String: Any] {
        let response = try self.response("POST", body: body)
        #expect(response.status == 201)
        return try json(response.body)
    }
}

private func json(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
    let object = try JSONSerialization.jsonObject(with: Data(text.utf8))
    return try #require(object as? [String: Any], "\(text)", sourceLocation: sourceLocation)
}

@Suite struct APIKeyEndpointsTests {
    @Test func handlesOnlyItsOwnPaths() {
        #expect(APIKeyEndpoints.handles("/v1/api-keys"))
        #expect(APIKeyEndpoints.handles("/v1/api-keys/key_0123456789abcdef"))
        #expect(APIKeyEndpoints.handles("/v1/api-keys/"))
        #expect(!APIKeyEndpoints.handles("/v1/api-keysx"))
        #expect(!APIKeyEndpoints.handles("/v1/api-key"))
        #expect(!APIKeyEndpoints.handles("/v1/api"))
        #expect(!APIKeyEndpoints.handles("/v2/api-keys"))
        // Any valid credential reaches the endpoints; they apply the rules themselves.
        #expect(APIKeyEndpoints.requiredScopes == [])
    }

    // MARK: who may manage keys

    private static let ann = session("usr_ann", ["read:databases", "read:logs"])
    private static let bob = session("usr_bob", ["read:databases"])

    private static func session(_ subject: String, _ scopes: [String], issuer: String = "https://gw.test") -> Principal
    {
        var principal = Principal(subject: subject, kind: .jwt, scopes: scopes)
        principal.issuer = issuer
        return principal
    }

    @Test func anotherIssuersTokenCannotBeTurnedIntoAKeyWithoutAdmin() throws {
        let h = EndpointsHarness()
        let external = Self.session("ext-user", ["read:databases"], issuer: "https://idp.example")
        let error = try h.error("POST", body: #"{"name":"x","scopes":["read:databases"]}"#, principal: external)
        #expect(error.status == 403)
        let externalAdmin = Self.session("ext-admin", ["admin"], issuer: "https://idp.example")
        #expect(
            try h.response("POST", body: #"{"name":"x","scopes":["read:databases"]}"#, principal: externalAdmin).status
                == 201
        )
    }

    @Test func anAPIKeyWithoutAdminCannotManageKeys() throws {
        let h = EndpointsHarness()
        let reader = Principal(subject: "ci", kind: .apiKey, scopes: ["read:databases"], keyID: "key_00000000000000bb")
        for (method, path) in [
            ("POST", APIKeyEndpoints.collectionPath), ("GET", APIKeyEndpoints.collectionPath),
            ("DELETE", APIKeyEndpoints.collectionPath + "/key_0123456789abcdef"),
        ] {
            let error = try h.error(method, path, body: #"{"name":"x","scopes":["read:databases"]}"#, principal: reader)
            #expect(error.status == 403)
            #expect(error.code == "insufficient_scope")
        }
    }

    @Test func aUserSessionCreatesKeysWithItsOwnScopesOnly() throws {
        let h = EndpointsHarness()
        let created = try h.response("POST", body: #"{"name":"mine","scopes":["read:logs"]}"#, principal: Self.ann)
        #expect(created.status == 201)
        #expect(try json(created.body)["owner"] as? String == "usr_ann")
        let refused = try h.error("POST", body: #"{"name":"mine","scopes":["write:databases"]}"#, principal: Self.ann)
        #expect(refused.status == 403)
    }

    @Test func aUserSeesAndRevokesOnlyItsOwnKeys() throws {
        let h = EndpointsHarness()
        let annKey = try json(
            try h.response("POST", body: #"{"name":"a","scopes":["read:databases"]}"#, principal: Self.ann).body
        )
        let bobKey = try json(
            try h.response("POST", body: #"{"name":"b","scopes":["read:databases"]}"#, principal: Self.bob).body
        )
        let annID = try #require(annKey["id"] as? String)
        let bobID = try #require(bobKey["id"] as? String)
        let annList = try json(try h.response("GET", principal: Self.ann).body)["api_keys"] as? [[String: Any]] ?? []
        #expect(annList.compactMap { $0["id"] as? String } == [annID])
        // Bob's key is not Ann's to revoke, and the answer does not reveal that it exists.
        let error = try h.error("DELETE", APIKeyEndpoints.collectionPath + "/" + bobID, principal: Self.ann)
        #expect(error.status == 404)
        #expect(
            try h.response("DELETE", APIKeyEndpoints.collectionPath + "/" + annID, principal: Self.ann).status == 200
        )
        // An admin sees everyone's.
        let all = try json(try h.response("GET").body)["api_keys"] as? [[String: Any]] ?? []
        #expect(Set(all.compactMap { $0["id"] as? String }) == [annID, bobID])
    }

    @Test func aDisabledOrUnknownUsersSessionManagesNothing() throws {
        let h = EndpointsHarness()
        let made = try json(
            try h.response("POST", body: #"{"name":"a","scopes":["read:databases"]}"#, principal: Self.ann).body
        )
        let id = try #require(made["id"] as? String)
        _ = try value(of: h.users.setUserDisabled(email: "ann@example.com", disabled: true), on: h.loop)
        for (method, path) in [
            ("POST", APIKeyEndpoints.collectionPath), ("GET", APIKeyEndpoints.collectionPath),
            ("DELETE", APIKeyEndpoints.collectionPath + "/" + id),
        ] {
            let error = try h.error(
                method,
                path,
                body: #"{"name":"b","scopes":["read:databases"]}"#,
                principal: Self.ann
            )
            #expect(error.status == 401)
            #expect(error.code == "invalid_token")
        }
        // Nothing was created while disabled; an admin API key still sees the one key.
        let all = try json(try h.response("GET").body)["api_keys"] as? [[String: Any]] ?? []
        #expect(all.compactMap { $0["id"] as? String } == [id])
        // A session whose subject names no user at all (deleted, or forged elsewhere).
        #expect(try h.error("GET", principal: Self.session("usr_gone", ["read:databases"])).status == 401)
        // An admin session of our issuer is checked as well.
        #expect(try h.error("GET", principal: Self.session("usr_gone", ["admin"])).status == 401)
        _ = try value(of: h.users.setUserDisabled(email: "ann@example.com", disabled: false), on: h.loop)
        #expect(try h.response("GET", principal: Self.ann).status == 200)
    }

    @Test func anOwnerCannotCreateKeysPastTheCapButRevokingFreesAPlace() throws {
        let h = EndpointsHarness(maxKeysPerOwner: 2)
        var ids: [String] = []
        for name in ["a", "b"] {
            let made = try json(
                try h.response("POST", body: #"{"name":"\#(name)","scopes":["read:databases"]}"#, principal: Self.ann)
                    .body
            )
            ids.append(try #require(made["id"] as? String))
        }
        let error = try h.error("POST", body: #"{"name":"c","scopes":["read:databases"]}"#, principal: Self.ann)
        #expect(error.status == 409)
        #expect(error.code == "key_limit_reached")
        // Another owner has a cap of its own.
        #expect(
            try h.response("POST", body: #"{"name":"b1","scopes":["read:databases"]}"#, principal: Self.bob).status
                == 201
        )
        #expect(
            try h.response("DELETE", APIKeyEndpoints.collectionPath + "/" + ids[0], principal: Self.ann).status == 200
        )
        #expect(
            try h.response("POST", body: #"{"name":"c","scopes":["read:databases"]}"#, principal: Self.ann).status
                == 201
        )
    }

    @Test func listsArePagedWithLimitAndCursor() throws {
        let h = EndpointsHarness()
        var made: [String] = []
        for index in 0..<5 {
            h.auth.clock.now += 1
            made.append(
                try #require(try h.createKey(#"{"name":"k\#(index)","scopes":["read:logs"]}"#)["id"] as? String)
            )
        }
        var seen: [String] = []
        var cursor: String?
        repeat {
            let page = try json(try h.response("GET", query: "limit=2" + (cursor.map { "&cursor=" + $0 } ?? "")).body)
            let entries = try #require(page["api_keys"] as? [[String: Any]])
            #expect(entries.count <= 2)
            seen += entries.compactMap { $0["id"] as? String }
            cursor = page["next_cursor"] as? String
        } while cursor != nil && seen.count < 10
        #expect(seen == made.reversed())
    }

    @Test(arguments: [
        "limit=0", "limit=1001", "limit=", "limit=x", "limit=-1", "cursor=abc", "cursor=1e3", "limit=1&limit=2",
        "other=1", "limit", "&", "cursor=1234567890",
    ])
    func aBadListQueryIs400(query: String) throws {
        let h = EndpointsHarness()
        let error = try h.error("GET", query: query)
        #expect(error.status == 400)
        #expect(error.code == "invalid_request")
    }

    @Test func everyCallPassesTheManagementLimitFirst() throws {
        let h = EndpointsHarness()
        #expect(try h.response("GET").status == 200)
        #expect(h.admitted == ["root"])
        h.refusal = GatewayError(
            status: 429,
            code: "rate_limited",
            description: "slow down",
            headers: [.init("Retry-After", "3")]
        )
        for method in ["GET", "POST"] {
            let error = try h.error(method, body: #"{"name":"x","scopes":["read:logs"]}"#)
            #expect(error.status == 429)
            #expect(error.headers.contains(.init("Retry-After", "3")))
        }
        #expect(h.auth.store.createCalls == 0)
        // Refusing those who may not manage keys costs no token.
        let reader = Principal(subject: "ci", kind: .apiKey, scopes: ["read:databases"], keyID: "key_00000000000000bb")
        #expect(try h.error("GET", principal: reader).status == 403)
        #expect(h.admitted == ["root", "root", "root"])
    }

    @Test func onlyAdminsGiveAKeyARateLimitTierAndOnlyAKnownOne() throws {
        let auth = AuthHarness()
        let service = APIKeyService(store: auth.store, hash: auth.authenticator.hash(apiKey:))
        let endpoints = APIKeyEndpoints(service: service, clock: ManualClock(0).clock, policies: ["gold"])
        func call(_ body: String, _ principal: Principal) -> Result<APIKeyEndpoints.Response, any Error> {
            let future = endpoints.handle(
                method: "POST",
                normalizedPath: APIKeyEndpoints.collectionPath,
                body: Array(body.utf8),
                principal: principal,
                eventLoop: auth.loop
            )
            auth.loop.run()
            nonisolated(unsafe) var result: Result<APIKeyEndpoints.Response, any Error>?
            future.whenComplete { result = $0 }
            auth.loop.run()
            return result!
        }
        let gold = call(#"{"name":"g","scopes":["read:databases"],"rate_limit":"gold"}"#, admin)
        let created = try gold.get()
        #expect(try json(created.body)["rate_limit"] as? String == "gold")
        #expect((try? call(#"{"name":"g","scopes":["read:databases"],"rate_limit":"platinum"}"#, admin).get()) == nil)
        #expect((try? call(#"{"name":"g","scopes":["read:databases"],"rate_limit":"gold"}"#, Self.ann).get()) == nil)
    }

    // MARK: POST

    @Test func postCreatesAKeyAndReturnsItOnce() throws {
        let h = EndpointsHarness()
        let response = try h.response(
            "POST",
            body: #"{"name":"ci deploy","scopes":["read:databases","read:logs"],"expires_in":"90d"}"#
        )
        #expect(response.status == 201)
        #expect(response.noStore)
        let document = try json(response.body)
        let key = try #require(document["key"] as? String)
        #expect(APIKeyFormat.problem(with: key) == nil)
        #expect(key.hasPrefix("dbaudit_live_"))
        #expect(document["name"] as? String == "ci deploy")
        #expect(document["scopes"] as? [String] == ["read:databases", "read:logs"])
        #expect(document["owner"] as? String == "root")
        #expect((document["created_at"] as? NSNumber)?.int64Value == AuthHarness.startTime)
        #expect((document["expires_at"] as? NSNumber)?.int64Value == AuthHarness.startTime + 90 * 86_400)
        #expect(document["last_used_at"] is NSNull)
        #expect(document["revoked"] as? Bool == false)
        #expect(document["last4"] as? String == String(key.suffix(4)))
        #expect(document["environment"] as? String == "live")
        let id = try #require(document["id"] as? String)
        #expect(id.hasPrefix("key_") && id.utf8.count == 20)
        #expect(
            Set(document.keys) == [
                "id", "name", "scopes", "owner", "created_at", "expires_at", "last_used_at", "revoked", "last4",
                "environment", "key",
            ]
        )

        // The key works, with the scopes it was given.
        let principal = try #require(
            try h.auth.resolve(h.auth.authorize(.readDatabases, key: key)).successValue
        )
        #expect(principal?.keyID == id)
        #expect(principal?.subject == "root")
        #expect(try h.auth.resolve(h.auth.authorize(.writeDatabases, key: key)).error?.status == 403)
    }

    @Test func postAcceptsNumericLifetimeNoLifetimeAndTestKeys() throws {
        let h = EndpointsHarness()
        let numeric = try h.createKey(#"{"name":"a","scopes":["read:logs"],"expires_in":3600}"#)
        #expect((numeric["expires_at"] as? NSNumber)?.int64Value == AuthHarness.startTime + 3600)
        let none = try h.createKey(#"{"name":"b","scopes":["read:logs"]}"#)
        #expect(none["expires_at"] is NSNull)
        let nullLifetime = try h.createKey(#"{"name":"c","scopes":["read:logs"],"expires_in":null}"#)
        #expect(nullLifetime["expires_at"] is NSNull)
        let test = try h.createKey(#"{"name":"d","scopes":["read:logs"],"test":true}"#)
        #expect((test["key"] as? String)?.hasPrefix("dbaudit_test_") == true)
        #expect(test["environment"] as? String == "test")
    }

    @Test(arguments: [
        "",
        "not json",
        "{",
        "[]",
        #"{"scopes":["read:logs"]}"#,
        #"{"name":"x"}"#,
        #"{"name":1,"scopes":["read:logs"]}"#,
        #"{"name":"x","scopes":"read:logs"}"#,
        #"{"name":"x","scopes":["read:logs"],"expires_in":1.5}"#,
        #"{"name":"x","scopes":["read:logs"],"expires_in":true}"#,
        #"{"name":"x","scopes":["read:logs"],"test":"yes"}"#,
    ])
    func postWithBadJSONIs400(body: String) throws {
        let h = EndpointsHarness()
        let error = try h.error("POST", body: body)
        #expect(error.status == 400)
        #expect(error.code == "invalid_request")
        #expect(h.auth.store.createCalls == 0)
    }

    @Test(arguments: [
        #"{"name":"x","scopes":["read:logs"],"expires_in":"1w"}"#,
        #"{"name":"x","scopes":["read:logs"],"expires_in":"1.5h"}"#,
        #"{"name":"x","scopes":["read:logs"],"expires_in":""}"#,
        #"{"name":"x","scopes":["read:logs"],"expires_in":0}"#,
        #"{"name":"x","scopes":["read:logs"],"expires_in":-5}"#,
        #"{"name":"x","scopes":["read:logs"],"expires_in":"99999d"}"#,
        #"{"name":"","scopes":["read:logs"]}"#,
        #"{"name":"x","scopes":[]}"#,
        #"{"name":"x","scopes":["read:everything"]}"#,
        #"{"name":"a\nb","scopes":["read:logs"]}"#,
    ])
    func postWithInvalidRequestIs400(body: String) throws {
        let h = EndpointsHarness()
        let error = try h.error("POST", body: body)
        #expect(error.status == 400)
        #expect(error.code == "invalid_request")
        #expect(h.auth.store.createCalls == 0)
    }

    @Test func postCannotGrantScopesTheCallerLacks() throws {
        let h = EndpointsHarness()
        let reader = Principal(subject: "bob", kind: .apiKey, scopes: ["read:logs"])
        let error = try h.error("POST", body: #"{"name":"x","scopes":["read:logs","admin"]}"#, principal: reader)
        #expect(error.status == 403)
        #expect(error.code == "insufficient_scope")
        #expect(error.description.contains("admin"))
        #expect(h.auth.store.createCalls == 0)
    }

    @Test func storeOutageIs503() throws {
        let h = EndpointsHarness()
        h.auth.store.failure = CredentialStoreError.unavailable
        #expect(try h.error("POST", body: #"{"name":"x","scopes":["read:logs"]}"#) == GatewayError.authUnavailable)
        #expect(try h.error("GET") == GatewayError.authUnavailable)
        #expect(try h.error("DELETE", "/v1/api-keys/key_0123456789abcdef") == GatewayError.authUnavailable)
    }

    @Test func otherStoreErrorsAre500WithoutDetails() throws {
        let h = EndpointsHarness()
        h.auth.store.failure = CredentialStoreError.corrupt("secret internal detail")
        let error = try h.error("GET")
        #expect(error == GatewayError.internalError)
        #expect(!error.description.contains("secret"))
    }

    // MARK: GET

    @Test func getListsKeysWithoutAnySecret() throws {
        let h = EndpointsHarness()
        let first = try h.createKey(#"{"name":"first","scopes":["read:logs"]}"#)
        h.auth.clock.now += 10
        let second = try h.createKey(#"{"name":"second","scopes":["admin"],"test":true}"#)
        let keys = try [first, second].map { try #require($0["key"] as? String) }

        for method in ["GET", "HEAD"] {
            let response = try h.response(method)
            #expect(response.status == 200)
            #expect(response.noStore)
            for key in keys {
                #expect(!response.body.contains(key))
                #expect(!response.body.contains(String(key.dropLast(4))))
                #expect(!response.body.contains(h.auth.authenticator.hash(apiKey: key)))
            }
            let document = try json(response.body)
            #expect(Set(document.keys) == ["api_keys", "next_cursor"])
            #expect(document["next_cursor"] is NSNull)
            let list = try #require(document["api_keys"] as? [[String: Any]])
            #expect(list.count == 2)
            // Newest first.
            #expect(list.map { $0["name"] as? String } == ["second", "first"])
            #expect(list.map { $0["id"] as? String } == [second["id"] as? String, first["id"] as? String])
            for entry in list {
                #expect(entry["key"] == nil)
                #expect(
                    Set(entry.keys) == [
                        "id", "name", "scopes", "owner", "created_at", "expires_at", "last_used_at", "revoked", "last4",
                        "environment",
                    ]
                )
            }
        }
    }

    @Test func getOfAnEmptyStore() throws {
        let h = EndpointsHarness()
        let response = try h.response("GET")
        #expect(response.body == #"{"api_keys":[],"next_cursor":null}"#)
    }

    // MARK: DELETE

    @Test func deleteRevokesTheKey() throws {
        let h = EndpointsHarness()
        let created = try h.createKey()
        let id = try #require(created["id"] as? String)
        let key = try #require(created["key"] as? String)

        let response = try h.response("DELETE", "/v1/api-keys/\(id)")
        #expect(response.status == 200)
        #expect(response.noStore)
        let document = try json(response.body)
        #expect(document["id"] as? String == id)
        #expect(document["revoked"] as? Bool == true)
        #expect(document["key"] == nil)
        #expect(!response.body.contains(key))

        let listed = try json(try h.response("GET").body)["api_keys"] as? [[String: Any]]
        #expect(listed?.first?["revoked"] as? Bool == true)
        expectRevoked(try h.auth.resolve(h.auth.authorize(.readDatabases, key: key)).error)
    }

    private func expectRevoked(_ error: GatewayError?, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(error?.status == 401, sourceLocation: sourceLocation)
        #expect(error?.code == "invalid_token", sourceLocation: sourceLocation)
    }

    @Test func deleteOfAnUnknownIDIs404() throws {
        let h = EndpointsHarness()
        _ = try h.createKey()
        let error = try h.error("DELETE", "/v1/api-keys/key_0123456789abcdef")
        #expect(error.status == 404)
        #expect(error.code == "not_found")
        #expect(h.auth.store.revokeCalls == 1)
    }

    @Test(arguments: [
        "/v1/api-keys/", "/v1/api-keys/abc", "/v1/api-keys/key_1", "/v1/api-keys/key_0123456789abcdef/x",
        "/v1/api-keys/KEY_0123456789ABCDEF",
    ])
    func deleteOfAMalformedIDIs404WithoutAStoreCall(path: String) throws {
        let h = EndpointsHarness()
        let error = try h.error("DELETE", path)
        #expect(error.status == 404)
        #expect(error.code == "not_found")
        #expect(h.auth.store.revokeCalls == 0)
    }

    // MARK: methods

    @Test(arguments: [
        ("PUT", "/v1/api-keys"),
        ("PATCH", "/v1/api-keys"),
        ("DELETE", "/v1/api-keys"),
        ("OPTIONS", "/v1/api-keys"),
        ("GET", "/v1/api-keys/key_0123456789abcdef"),
        ("POST", "/v1/api-keys/key_0123456789abcdef"),
        ("PUT", "/v1/api-keys/key_0123456789abcdef"),
        ("get", "/v1/api-keys"),
    ])
    func otherMethodsAre405(method: String, path: String) throws {
        let h = EndpointsHarness()
        let error = try h.error(method, path, body: #"{"name":"x","scopes":["read:logs"]}"#)
        #expect(error.status == 405)
        #expect(error.code == "method_not_allowed")
        #expect(h.auth.store.createCalls == 0)
        #expect(h.auth.store.revokeCalls == 0)
    }

    // MARK: JSON escaping

    @Test func hostileNameRoundTripsThroughValidJSON() throws {
        let h = EndpointsHarness()
        let hostile = #"Robert"},"admin":true,"x":"\ \\ \u0000 </script>"#
        var body = #"{"name":"#
        JSONText.appendQuoted(hostile, to: &body)
        body += #","scopes":["read:logs"]}"#
        let created = try h.createKey(body)
        #expect(created["name"] as? String == hostile)
        #expect(created["admin"] == nil)

        let list = try #require(try json(h.response("GET").body)["api_keys"] as? [[String: Any]])
        #expect(list.first?["name"] as? String == hostile)
    }

    @Test func recordJSONEscapesEveryField() throws {
        let nasty = "q\"uote b\\ack\nnew\rret\ttab \u{0}nul \u{1F}us \u{7F}del \u{2028}ls \u{2029}ps é 🔑"
        let record = APIKeyRecord(
            id: "key_\"\\\n",
            name: nasty,
            scopes: ["read:logs", "\"],\"admin\":[\""],
            owner: nasty,
            createdAt: 1,
            expiresAt: nil,
            revoked: true,
            lastUsedAt: 7,
            last4: "\\\\\"\"",
            environment: "live\n"
        )
        let text = APIKeyEndpoints.recordJSON(record)
        #expect(!text.utf8.contains { $0 < 0x20 || $0 == 0x7F }, "raw control characters in \(text)")
        let document = try json(text)
        #expect(document["id"] as? String == record.id)
        #expect(document["name"] as? String == nasty)
        #expect(document["scopes"] as? [String] == record.scopes)
        #expect(document["owner"] as? String == nasty)
        #expect((document["created_at"] as? NSNumber)?.int64Value == 1)
        #expect(document["expires_at"] is NSNull)
        #expect((document["last_used_at"] as? NSNumber)?.int64Value == 7)
        #expect(document["revoked"] as? Bool == true)
        #expect(document["last4"] as? String == record.last4)
        #expect(document["environment"] as? String == "live\n")
        #expect(document["admin"] == nil)

        let list = try json(APIKeyEndpoints.listJSON([record, record], nextCursor: "2\""))
        #expect((list["api_keys"] as? [[String: Any]])?.count == 2)
        #expect(list["next_cursor"] as? String == "2\"")
        #expect(try json(APIKeyEndpoints.listJSON([], nextCursor: nil))["next_cursor"] is NSNull)
    }
}
