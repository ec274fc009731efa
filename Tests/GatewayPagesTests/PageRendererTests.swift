import GatewayCore
import GatewayPages
import Testing

@Suite struct PageRendererTests {
    private func html(_ page: PageRenderer.Page, _ context: [String: Any]) -> String {
        String(decoding: PageRenderer.standard.render(page, context), as: UTF8.self)
    }

    @Test func valuesAreHTMLEscaped() {
        let page = html(
            .consent,
            [
                "title": "Allow access", "client_name": "<script>alert(1)</script>", "user_email": "a\"b'@x.example",
                "scopes": [["name": "read:logs", "description": "<b>x</b> & y"]],
                "redirect_origin": "https://c.example",
                "flow": "f\"><x", "csrf_token": "t", "action": "/oauth/authorize/consent",
                "logout_action": "/oauth/logout",
                "session_csrf_token": "s",
            ]
        )
        #expect(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(!page.contains("<script>"))
        #expect(page.contains("a&quot;b&#39;@x.example"))
        #expect(page.contains("&lt;b&gt;x&lt;/b&gt; &amp; y"))
        #expect(page.contains("value=\"f&quot;&gt;&lt;x\""))
    }

    @Test func loginPageHasTheContractedFields() {
        let page = html(
            .login,
            [
                "title": "Sign in", "client_name": "App", "flow": "F1", "csrf_token": "C1",
                "action": "/oauth/authorize/login",
            ]
        )
        #expect(page.contains("<input type=\"email\" id=\"email\" name=\"email\""))
        #expect(page.contains("<input type=\"password\" id=\"password\" name=\"password\""))
        #expect(page.contains("<input type=\"hidden\" name=\"flow\" value=\"F1\">"))
        #expect(page.contains("<input type=\"hidden\" name=\"csrf_token\" value=\"C1\">"))
        #expect(page.contains("id=\"login\""))
        #expect(page.contains("<link rel=\"stylesheet\" href=\"/oauth/static/gateway.css\">"))
        #expect(!page.contains("<script"))
        #expect(!page.contains("style="))
        #expect(!page.contains("login-error"))
    }

    @Test func loginPageShowsProviderLinksBesideOrInsteadOfThePasswordForm() {
        let providers: [[String: Any]] = [
            ["name": "corp", "display_name": "Corp <SSO>", "href": "/sso/start?provider=corp&flow=F1"]
        ]
        let beside = html(
            .login,
            [
                "title": "Sign in", "client_name": "App", "flow": "F1", "csrf_token": "C1",
                "action": "/oauth/authorize/login",
                "has_sso": true, "sso_providers": providers,
            ]
        )
        #expect(
            beside.contains(
                "id=\"sso-corp\" href=\"/sso/start?provider=corp&amp;flow=F1\">Sign in with Corp &lt;SSO&gt;</a>"
            )
        )
        #expect(beside.contains("id=\"password\""))
        let instead = html(
            .login,
            [
                "title": "Sign in", "client_name": "App", "flow": "F1", "csrf_token": "C1",
                "action": "/oauth/authorize/login",
                "has_sso": true, "sso_providers": providers, "password_login_off": true,
            ]
        )
        #expect(instead.contains("id=\"sso-corp\""))
        #expect(!instead.contains("id=\"password\"") && !instead.contains("id=\"login\""))
        let none = html(
            .login,
            [
                "title": "Sign in", "client_name": "App", "flow": "F1", "csrf_token": "C1",
                "action": "/oauth/authorize/login",
            ]
        )
        #expect(!none.contains("sso-"))
    }

    @Test func consentPageListsEachScopeAndBothButtons() {
        let page = html(
            .consent,
            [
                "title": "Allow access", "client_name": "Reporting App", "user_email": "u@x.example",
                "scopes": [
                    ["name": "read:logs", "description": "Access audit logs and activity history"],
                    ["name": "read:reports", "description": "Generate and view compliance reports"],
                ],
                "redirect_origin": "https://c.example", "flow": "F", "csrf_token": "C", "action": "/a",
                "logout_action": "/l",
                "session_csrf_token": "S",
            ]
        )
        #expect(page.contains("Reporting App"))
        #expect(page.contains("<code>read:logs</code> <span>Access audit logs and activity history</span>"))
        #expect(page.contains("<code>read:reports</code> <span>Generate and view compliance reports</span>"))
        #expect(page.contains("name=\"decision\" value=\"allow\" id=\"allow\""))
        #expect(page.contains("name=\"decision\" value=\"deny\" id=\"deny\""))
    }

    @Test func errorPageShowsTheMessageAndRequestID() {
        let page = html(
            .error,
            ["title": "Cannot continue", "message": "Bad <thing>", "request_id": "rid-1", "code": "invalid_request"]
        )
        #expect(page.contains("Bad &lt;thing&gt;"))
        #expect(page.contains("rid-1"))
        #expect(page.contains("invalid_request"))
    }

    @Test func securityHeadersAreTheListedOnes() {
        let headers = PageHeaders.security()
        let map = Dictionary(uniqueKeysWithValues: headers.map { ($0.name, $0.value) })
        #expect(
            map["Content-Security-Policy"]
                == "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'"
        )
        #expect(map["X-Frame-Options"] == "DENY")
        #expect(map["Referrer-Policy"] == "no-referrer")
        #expect(map["Cache-Control"] == "no-store")
        #expect(map["X-Content-Type-Options"] == "nosniff")
        let consent = PageHeaders.security(formActionOrigin: "http://127.0.0.1:5000")
        #expect(
            consent.first?.value
                == "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self' http://127.0.0.1:5000; frame-ancestors 'none'"
        )
    }
}

@Suite struct FormActionOriginTests {
    @Test func originOfRedirectURIs() {
        #expect(AuthorizePages.origin(of: "https://app.example.com/cb?x=1") == "https://app.example.com")
        #expect(AuthorizePages.origin(of: "http://127.0.0.1:51234/callback") == "http://127.0.0.1:51234")
        #expect(AuthorizePages.origin(of: "http://127.0.0.1/callback") == "http://127.0.0.1")
        // A CSP source cannot name an IPv6 literal: any host on that scheme and port.
        #expect(AuthorizePages.origin(of: "http://[::1]:7000/cb") == "http://*:7000")
        #expect(AuthorizePages.origin(of: "http://[::1]/cb") == "http://*")
        // Nothing that could break out of the policy.
        #expect(AuthorizePages.origin(of: "https://a.example;script-src *") == nil)
        #expect(AuthorizePages.origin(of: "no-scheme") == nil)
    }
}

@Suite struct PageSetTests {
    @Test func anotherPageSetSharesThePartialsAndHeaders() {
        let renderer = PageRenderer(pages: ["keys": "{{> header}}<p>{{name}}</p>{{> footer}}"])
        let response = PageResponses.page(named: "keys", ["title": "API keys", "name": "<b>"], renderer: renderer)
        let html = String(decoding: response.body, as: UTF8.self)
        #expect(html.contains("<title>API keys · DBAudit Gateway</title>"))
        #expect(html.contains("<p>&lt;b&gt;</p>"))
        #expect(html.hasSuffix("</html>\n"))
        #expect(response.contentType == "text/html; charset=utf-8")
        #expect(
            response.headers.contains {
                $0.name == "Content-Security-Policy" && $0.value == PageHeaders.contentSecurityPolicy
            }
        )
    }

    @Test func errorPagesKeepTheStatusAndHeadersOfTheError() {
        let error = GatewayError(
            status: 429,
            code: "too_many_attempts",
            description: "Wait.",
            headers: [.init("Retry-After", "7")]
        )
        let response = PageResponses.error(error, requestID: "rid")
        #expect(response.status == 429)
        #expect(response.contentType.hasPrefix("text/html"))
        #expect(response.headers.contains { $0.name == "Retry-After" && $0.value == "7" })
        #expect(String(decoding: response.body, as: UTF8.self).contains("too_many_attempts"))
    }

    @Test func seeOtherIs303WithLocation() {
        let response = PageResponses.seeOther("/next")
        #expect(response.status == 303)
        #expect(response.headers.first == .init("Location", "/next"))
    }
}
