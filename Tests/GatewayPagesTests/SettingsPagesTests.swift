import GatewayAuth
import GatewayCore
import GatewayPages
import GatewayStore
import GatewayTestSupport
import Logging
import NIOCore
import NIOEmbedded
import Testing

/// Admits every attempt: the page logic, not the limits, is under test here.
private final class OpenThrottle: LoginThrottle {
    let loop: EmbeddedEventLoop
    init(loop: EmbeddedEventLoop) { self.loop = loop }
    func admit(
        address: String?,
        account: String?,
        purpose: LoginThrottlePurpose
    ) -> EventLoopFuture<LoginThrottleDecision> {
        loop.makeSucceededFuture(.allowed)
    }
}

/// One loop's settings pages on in-memory stores, and a browser (its cookies) to drive them.
private final class Harness {
    let loop = EmbeddedEventLoop()
    let keysData = InMemoryCredentialData()
    let usersData = InMemorySessionData()
    let clock = ManualClock(1_800_000_000)
    let browserData: InMemoryBrowserStateData
    var now: Int64 {
        get { clock.now }
        set { clock.now = newValue }
    }
    let pages: SettingsPages
    let keys: APIKeyService
    let users: InMemorySessionStore

    init() throws {
        browserData = InMemoryBrowserStateData(clock: clock.clock)
        users = InMemorySessionStore(eventLoop: loop, data: usersData)
        for (id, email, scopes) in [
            ("usr_ada", "ada@example.test", ["read:logs", "read:databases"]),
            ("usr_bob", "bob@example.test", ["read:logs"]),
            ("usr_root", "root@example.test", ["admin"]),
        ] {
            try users.createUser(
                UserRecord(id: id, email: email, scopes: scopes, passwordHash: "pw-" + id, createdAt: 0)
            ).wait()
        }
        let credentials = CredentialCheck(
            sessions: users,
            throttle: OpenThrottle(loop: loop),
            checkPassword: { password, encoded, loop in loop.makeSucceededFuture("pw-" + password == encoded) },
            decoyHash: "decoy"
        )
        keys = APIKeyService(store: InMemoryCredentialStore(eventLoop: loop, data: keysData)) { "hash-" + $0 }
        let clock = self.clock
        pages = SettingsPages(
            SettingsPages.Dependencies(
                prefix: "/settings",
                sessionPolicy: BrowserSessionPolicy(idleTimeout: 1800, lifetime: 43200),
                browserState: InMemoryBrowserStateStore(eventLoop: loop, data: browserData),
                users: users,
                credentials: credentials,
                keys: keys,
                maxKeysPerOwner: 2,
                logger: Logger(label: "test"),
                clock: clock.clock
            )
        )
    }

    final class Browser {
        var cookies: [String: String] = [:]
    }

    func send(
        _ browser: Browser,
        _ method: String,
        _ target: String,
        form: [String: String]? = nil
    ) throws -> LocalResponse {
        let parts = target.split(separator: "?", maxSplits: 1).map(String.init)
        let body =
            form.map { $0.map { FormFields.encode($0.key) + "=" + FormFields.encode($0.value) }.joined(separator: "&") }
            ?? ""
        let cookie = browser.cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")
        let request = LocalRequest(
            method: method,
            normalizedPath: parts[0],
            query: parts.count > 1 ? parts[1] : "",
            headers: cookie.isEmpty ? [] : [.init("Cookie", cookie)],
            body: Array(body.utf8),
            clientAddress: "127.0.0.1",
            isTLS: false,
            requestID: "req-1"
        )
        let response = try pages.handle(request, eventLoop: loop).wait()
        for field in response.headers where field.name == "Set-Cookie" {
            let pair = field.value.split(separator: ";")[0].split(
                separator: "=",
                maxSplits: 1,
                omittingEmptySubsequences: false
            )
            browser.cookies[String(pair[0])] = pair[1].isEmpty ? nil : String(pair[1])
        }
        return response
    }

    static func text(_ response: LocalResponse) -> String { String(decoding: response.body, as: UTF8.self) }

    static func hidden(_ name: String, in response: LocalResponse) -> String? {
        let page = text(response)
        guard let range = page.range(of: "name=\"\(name)\" value=\"") else { return nil }
        return String(page[range.upperBound...].prefix { $0 != "\"" })
    }

    func signIn(_ email: String) throws -> Browser {
        let browser = Browser()
        let form = try send(browser, "GET", "/settings/login")
        let csrf = try #require(Self.hidden("csrf_token", in: form))
        let response = try send(
            browser,
            "POST",
            "/settings/login",
            form: [
                "csrf_token": csrf, "next": "/settings/api-keys", "email": email,
                "password": "usr_" + email.prefix { $0 != "@" },
            ]
        )
        #expect(response.status == 303)
        return browser
    }

    func csrf(_ browser: Browser) throws -> String {
        try #require(Self.hidden("csrf_token", in: try send(browser, "GET", "/settings/api-keys/new")))
    }

    func create(
        _ browser: Browser,
        name: String = "k",
        scopes: [String] = ["read:logs"],
        csrf: String? = nil
    ) throws -> LocalResponse {
        var form = ["csrf_token": try csrf ?? self.csrf(browser), "name": name, "environment": "live", "expires": "90"]
        for scope in scopes { form["scope_" + scope] = "on" }
        return try send(browser, "POST", "/settings/api-keys", form: form)
    }

    func liveKeys(owner: String) throws -> [APIKeyRecord] {
        try keys.list(owner: owner, offset: 0, limit: 100).wait().records.filter { !$0.revoked }
    }
}

private func header(_ name: String, _ response: LocalResponse) -> String? {
    response.headers.first { $0.name.lowercased() == name.lowercased() }?.value
}

@Suite struct SettingsPagesTests {
    @Test func signedOutPagesGoToTheSignInPage() throws {
        let h = try Harness()
        let response = try h.send(.init(), "GET", "/settings/api-keys/new")
        #expect(response.status == 303)
        #expect(header("Location", response) == "/settings/login?next=%2Fsettings%2Fapi-keys%2Fnew")
    }

    @Test func aWrongPasswordOrAForeignLoginFormIsRefused() throws {
        let h = try Harness()
        let browser = Harness.Browser()
        let csrf = try #require(Harness.hidden("csrf_token", in: try h.send(browser, "GET", "/settings/login")))
        let wrong = try h.send(
            browser,
            "POST",
            "/settings/login",
            form: ["csrf_token": csrf, "email": "ada@example.test", "password": "nope"]
        )
        #expect(wrong.status == 303 && header("Location", wrong)?.contains("error=credentials") == true)
        let stranger = try h.send(
            .init(),
            "POST",
            "/settings/login",
            form: ["csrf_token": csrf, "email": "ada@example.test", "password": "usr_ada"]
        )
        #expect(stranger.status == 403)
    }

    @Test func createShowsTheKeyOnceAndItIsInNoURL() throws {
        let h = try Harness()
        let ada = try h.signIn("ada@example.test")
        let created = try h.create(ada, scopes: ["read:logs", "read:databases"])
        #expect(created.status == 303 && header("Location", created) == "/settings/api-keys/created")
        let shown = try h.send(ada, "GET", "/settings/api-keys/created")
        let page = Harness.text(shown)
        let key = try #require(
            page.range(of: "id=\"api-key\" value=\"").map { String(page[$0.upperBound...].prefix { $0 != "\"" }) }
        )
        #expect(APIKeyFormat.problem(with: key) == nil)
        #expect(header("Content-Security-Policy", shown)?.contains("script-src 'self'") == true)
        #expect(header("Cache-Control", shown) == "no-store")
        let record = try #require(try h.liveKeys(owner: "usr_ada").first)
        #expect(record.scopes == ["read:databases", "read:logs"] && record.owner == "usr_ada")
        // Nowhere else: not the list, not a second GET.
        #expect(!Harness.text(try h.send(ada, "GET", "/settings/api-keys")).contains(key))
        let again = try h.send(ada, "GET", "/settings/api-keys/created")
        #expect(again.status == 404 && !Harness.text(again).contains(key))
    }

    @Test func csrfMissingOrAnotherSessionsCreatesNothing() throws {
        let h = try Harness()
        let ada = try h.signIn("ada@example.test")
        let other = try h.signIn("ada@example.test")
        let otherToken = try h.csrf(other)
        for token in ["", otherToken] {
            #expect(try h.create(ada, csrf: token).status == 403)
        }
        #expect(try h.liveKeys(owner: "usr_ada").isEmpty)
    }

    @Test func scopesNotHeldAreRefusedAndNothingIsCreated() throws {
        let h = try Harness()
        let bob = try h.signIn("bob@example.test")
        let response = try h.create(bob, scopes: ["read:logs", "admin"])
        #expect(
            response.status == 303 && header("Location", response)?.hasPrefix("/settings/api-keys/new?retry=1") == true
        )
        let form = try h.send(bob, "GET", String(header("Location", response)!))
        #expect(Harness.text(form).contains("id=\"scopes-error\""))
        #expect(!Harness.text(form).contains("scope_admin"))
        #expect(try h.liveKeys(owner: "usr_bob").isEmpty)
    }

    @Test func onlyTheOwnerOrAnAdminRevokes() throws {
        let h = try Harness()
        let ada = try h.signIn("ada@example.test")
        let bob = try h.signIn("bob@example.test")
        _ = try h.create(ada)
        let id = try #require(try h.liveKeys(owner: "usr_ada").first?.id)
        #expect(!Harness.text(try h.send(bob, "GET", "/settings/api-keys")).contains(id))
        #expect(try h.send(bob, "GET", "/settings/api-keys/revoke?id=\(id)").status == 404)
        #expect(
            try h.send(bob, "POST", "/settings/api-keys/revoke", form: ["csrf_token": try h.csrf(bob), "id": id]).status
                == 404
        )
        #expect(try h.liveKeys(owner: "usr_ada").count == 1)
        let root = try h.signIn("root@example.test")
        #expect(Harness.text(try h.send(root, "GET", "/settings/api-keys")).contains(id))
        let revoked = try h.send(
            root,
            "POST",
            "/settings/api-keys/revoke",
            form: ["csrf_token": try h.csrf(root), "id": id]
        )
        #expect(revoked.status == 303)
        #expect(try h.liveKeys(owner: "usr_ada").isEmpty)
    }

    @Test func theOwnersCapIsAPage() throws {
        let h = try Harness()
        let ada = try h.signIn("ada@example.test")
        for _ in 0..<2 { #expect(try h.create(ada).status == 303) }
        let third = try h.create(ada)
        #expect(third.status == 409 && Harness.text(third).contains("key_limit_reached"))
    }

    @Test func sessionsEndWhenIdleOrDisabled() throws {
        let h = try Harness()
        let ada = try h.signIn("ada@example.test")
        #expect(try h.send(ada, "GET", "/settings/api-keys").status == 200)
        h.now += 1801
        #expect(try h.send(ada, "GET", "/settings/api-keys").status == 303)
        let again = try h.signIn("ada@example.test")
        #expect(try h.send(again, "GET", "/settings/api-keys").status == 200)
        _ = try h.users.setUserDisabled(email: "ada@example.test", disabled: true).wait()
        #expect(try h.send(again, "GET", "/settings/api-keys").status == 303)
    }

    @Test func keyNamesAreEscaped() throws {
        let h = try Harness()
        let ada = try h.signIn("ada@example.test")
        _ = try h.create(ada, name: "<script>alert(1)</script>")
        let list = Harness.text(try h.send(ada, "GET", "/settings/api-keys"))
        #expect(!list.contains("<script>alert(1)</script>") && list.contains("&lt;script&gt;"))
    }
}
