import GatewayAuth
import GatewayConfig
import GatewayCore
import GatewayPages
import Testing

@Suite struct SettingsPathsTests {
    let paths = SettingsPaths(prefix: "/settings")

    @Test func handlesOnlyItsPrefix() {
        #expect(paths.handles("/settings"))
        #expect(paths.handles("/settings/api-keys"))
        #expect(!paths.handles("/settingsx"))
        #expect(!paths.handles("/oauth/authorize"))
    }

    @Test func afterLoginStaysUnderThePrefix() {
        #expect(paths.afterLogin("/settings/api-keys/new") == "/settings/api-keys/new")
        #expect(paths.afterLogin("/settings") == "/settings")
        for hostile in [
            nil, "", "https://evil.test/", "//evil.test/settings", "/settings/../oauth", "/settings/./x",
            "/v1/databases",
            "/settings/a?x=1", "/settings//x", "/settingsx", "/settings/login", "/settings/logout", "\\\\evil.test",
            "/settings/a%2Fb",
            "/settings/" + String(repeating: "a", count: 130),
        ] {
            #expect(paths.afterLogin(hostile) == "/settings/api-keys", "\(hostile ?? "nil")")
        }
    }

    @Test func loginLocationCarriesAnEncodedNext() {
        #expect(
            paths.loginLocation(next: "/settings/api-keys/new") == "/settings/login?next=%2Fsettings%2Fapi-keys%2Fnew"
        )
        #expect(paths.loginLocation(next: "https://evil.test") == "/settings/login?next=%2Fsettings%2Fapi-keys")
    }
}

@Suite struct UIPrefixTests {
    @Test func acceptsPlainPrefixes() {
        for prefix in ["/settings", "/account/settings", "/a-b_c/d1"] {
            #expect(UISettings.problem(withPrefix: prefix) == nil, "\(prefix)")
        }
    }

    @Test func refusesOthers() {
        for prefix in [
            "", "/", "settings", "/settings/", "/Settings", "/a//b", "/a b", "/oauth", "/oauth/x", "/v1",
            "/.well-known/x", "/a/..",
        ] {
            #expect(UISettings.problem(withPrefix: prefix) != nil, "\(prefix)")
        }
    }

    @Test func onByDefaultOnlyForAnIssuer() {
        var settings = UISettings()
        #expect(settings.settingsPagesOn(issuer: "https://gw.test"))
        #expect(!settings.settingsPagesOn(issuer: nil))
        settings.enabled = false
        #expect(!settings.settingsPagesOn(issuer: "https://gw.test"))
        settings.enabled = true
        #expect(!settings.settingsPagesOn(issuer: nil))
    }
}

@Suite struct KeyCreateFormTests {
    let offered = ["read:databases", "read:logs"]

    func fields(_ pairs: [String: String]) -> FormFields { FormFields(values: pairs) }

    @Test func aCompleteFormIsValid() throws {
        let form = try #require(
            KeyCreateForm.parse(
                fields([
                    "csrf_token": "t", "name": "  CI export ", "scope_read:logs": "on", "scope_read:databases": "on",
                    "environment": "test", "expires": "30",
                ]),
                offered: offered
            )
        )
        #expect(form.isValid)
        #expect(form.name == "CI export")
        #expect(form.scopes == ["read:databases", "read:logs"])
        #expect(form.test)
        #expect(form.expiresInSeconds == Int64(2_592_000))
    }

    @Test func expiryChoices() throws {
        for (value, seconds) in [("never", nil), ("90", Int64(90 * 86_400)), ("365", Int64(365 * 86_400))]
            as [(String, Int64?)]
        {
            let form = try #require(
                KeyCreateForm.parse(
                    fields(["name": "k", "scope_read:logs": "on", "environment": "live", "expires": value]),
                    offered: offered
                )
            )
            #expect(form.isValid && form.expiresInSeconds == seconds && !form.test)
        }
    }

    @Test func eachWrongFieldHasItsOwnError() throws {
        let form = try #require(
            KeyCreateForm.parse(fields(["name": " ", "environment": "prod", "expires": "7"]), offered: offered)
        )
        #expect(Set(form.errors.keys) == ["name", "scopes", "environment", "expires"])
    }

    @Test func nameIsLengthLimitedAndPrintable() throws {
        let long = try #require(
            KeyCreateForm.parse(
                fields([
                    "name": String(repeating: "é", count: 101), "scope_read:logs": "on", "environment": "live",
                    "expires": "90",
                ]),
                offered: offered
            )
        )
        #expect(long.errors["name"] != nil)
        #expect(long.name.count == 101)  // still too long when the form is shown again
        let exact = try #require(
            KeyCreateForm.parse(
                fields([
                    "name": String(repeating: "é", count: 100), "scope_read:logs": "on", "environment": "live",
                    "expires": "90",
                ]),
                offered: offered
            )
        )
        #expect(exact.isValid)
        let control = try #require(
            KeyCreateForm.parse(
                fields(["name": "a\u{7F}b", "scope_read:logs": "on", "environment": "live", "expires": "90"]),
                offered: offered
            )
        )
        #expect(control.errors["name"] != nil)
    }

    @Test func scopesNotHeldOrUnknownAreRefused() throws {
        let notHeld = try #require(
            KeyCreateForm.parse(
                fields([
                    "name": "k", "scope_admin": "on", "scope_read:logs": "on", "environment": "live", "expires": "90",
                ]),
                offered: offered
            )
        )
        #expect(notHeld.errors["scopes"]?.contains("admin") == true)
        let unknown = try #require(
            KeyCreateForm.parse(
                fields(["name": "k", "scope_no:such": "on", "environment": "live", "expires": "90"]),
                offered: offered
            )
        )
        #expect(unknown.errors["scopes"] != nil && !unknown.scopes.contains("no:such"))
    }

    @Test func aFieldTheFormNeverHasRefusesTheWholeForm() {
        #expect(
            KeyCreateForm.parse(
                fields([
                    "name": "k", "scope_read:logs": "on", "environment": "live", "expires": "90", "owner": "usr_other",
                ]),
                offered: offered
            ) == nil
        )
        #expect(KeyCreateForm.parse(fields(["name": "k", "scope_read:logs": "yes"]), offered: offered) == nil)
        #expect(KeyCreateForm.parse(FormFields(values: ["name": "k"], duplicates: ["name"]), offered: offered) == nil)
    }
}

@Suite struct KeyRevealTests {

    @Test func opensOnlyWithItsCookie() throws {
        let real = APIKeyFormat.generate(test: false)
        let reveal = KeyReveal.seal(key: real, cookie: "cookie-one", userID: "usr_1", keyID: "key_1", name: "n")
        #expect(reveal.open(cookie: "cookie-one") == real)
        #expect(reveal.open(cookie: "cookie-two") == nil)
        // The stored record does not hold the key.
        let json = try #require(reveal.json())
        #expect(!json.contains(real) && !json.contains(String(real.dropFirst(13))))
        #expect(KeyReveal.decode(json) == reveal)
    }

    @Test func recordIDsDependOnTheCookieAndCannotBeFlowIDs() {
        let one = KeyReveal.recordID(cookie: "cookie-one")
        #expect(one.utf8.count == 64 && one != KeyReveal.recordID(cookie: "cookie-two"))
        #expect(!AuthorizeFlow.isValidID(one))
    }

    @Test func aTamperedRecordOpensToNothing() {
        var reveal = KeyReveal.seal(
            key: APIKeyFormat.generate(test: false),
            cookie: "c",
            userID: "u",
            keyID: "k",
            name: "n"
        )
        reveal.sealed = String(reveal.sealed.reversed())
        #expect(reveal.open(cookie: "c") == nil)
        reveal.sealed = "%%%"
        #expect(reveal.open(cookie: "c") == nil)
    }
}

@Suite struct SettingsClockTests {
    @Test func formatsUTC() {
        #expect(SettingsClock.text(0) == "1970-01-01 00:00 UTC")
        #expect(SettingsClock.text(951_782_400) == "2000-02-29 00:00 UTC")
        #expect(SettingsClock.text(1_796_396_820) == "2026-12-04 15:07 UTC")
        #expect(SettingsClock.text(4_102_444_799) == "2099-12-31 23:59 UTC")
    }
}
