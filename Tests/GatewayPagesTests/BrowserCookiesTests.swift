import GatewayPages
import Testing

@Suite struct BrowserCookiesTests {
    let value = String(repeating: "A", count: 42) + "b"

    @Test func namesCarryTheHostPrefixOnTLSOnly() {
        #expect(BrowserCookies.sessionName(isTLS: true) == "__Host-dbgw_session")
        #expect(BrowserCookies.sessionName(isTLS: false) == "dbgw_session")
    }

    @Test func setCookieAttributes() {
        let tls = BrowserCookies.set(name: "__Host-dbgw_session", value: value, maxAge: 43200, isTLS: true)
        #expect(tls.name == "Set-Cookie")
        #expect(tls.value == "__Host-dbgw_session=\(value); Path=/; Max-Age=43200; HttpOnly; SameSite=Lax; Secure")
        let plain = BrowserCookies.set(name: "dbgw_session", value: value, maxAge: 60, isTLS: false)
        #expect(plain.value == "dbgw_session=\(value); Path=/; Max-Age=60; HttpOnly; SameSite=Lax")
        #expect(BrowserCookies.clear(name: "dbgw_session", isTLS: false).value.contains("Max-Age=0"))
    }

    @Test func readsTheNamedCookieAmongOthers() {
        #expect(BrowserCookies.value(named: "dbgw_session", in: ["a=1; dbgw_session=\(value); b=2"]) == value)
        #expect(BrowserCookies.value(named: "dbgw_session", in: ["a=1", "dbgw_session=\(value)"]) == value)
        #expect(BrowserCookies.value(named: "dbgw_session", in: ["xdbgw_session=\(value)"]) == nil)
        #expect(BrowserCookies.value(named: "dbgw_session", in: []) == nil)
    }

    @Test func refusesDuplicatesAndForeignShapes() {
        #expect(
            BrowserCookies.value(named: "dbgw_session", in: ["dbgw_session=\(value); dbgw_session=\(value)"]) == nil
        )
        #expect(BrowserCookies.value(named: "dbgw_session", in: ["dbgw_session=short"]) == nil)
        #expect(BrowserCookies.value(named: "dbgw_session", in: ["dbgw_session=\(value)x"]) == nil)
        let padded = String(repeating: "A", count: 42) + "="
        #expect(BrowserCookies.value(named: "dbgw_session", in: ["dbgw_session=\(padded)"]) == nil)
        let dotted = String(repeating: "A", count: 42) + "."
        #expect(BrowserCookies.value(named: "dbgw_session", in: ["dbgw_session=\(dotted)"]) == nil)
    }

    @Test func csrfComparison() {
        let token = CSRFCheck.newToken()
        #expect(token.utf8.count == 43)
        #expect(CSRFCheck.matches(posted: token, expected: token))
        #expect(!CSRFCheck.matches(posted: nil, expected: token))
        #expect(!CSRFCheck.matches(posted: "", expected: token))
        #expect(!CSRFCheck.matches(posted: CSRFCheck.newToken(), expected: token))
        #expect(!CSRFCheck.matches(posted: String(token.dropLast()), expected: token))
        #expect(!CSRFCheck.matches(posted: "", expected: ""))
        #expect(!CSRFCheck.matches(posted: token, expected: nil))
    }
}
