import Foundation
package import GatewayAuth
import GatewayConfig
package import GatewayCore
import GatewayOAuth
package import GatewayStore
package import Logging
package import NIOCore

/// The browser side of the OAuth authorization server: `GET /oauth/authorize`, the sign-in
/// form (`POST /oauth/authorize/login`), the consent page (`GET|POST
/// /oauth/authorize/consent`), sign-out (`POST /oauth/logout`, `GET /oauth/logout`) and the
/// stylesheet. Every answer is HTML (never JSON), every form POST answers 303 or an error
/// page, every form carries a CSRF token checked in constant time.
///
/// A request passes `AuthorizeValidation` first; until its redirect URI is proven to be the
/// client's, refusals are pages. The validated request lives in a flow record (ten
/// minutes) bound to the browser that started it; sign-in creates a browser session; allow
/// stores the consent and an authorization code (only its SHA-256) and sends the browser
/// back with `code`, `state` and `iss`. One instance per event loop, rebuilt on reload;
/// touched only on its loop.
package final class AuthorizePages: LocalEndpoint {
    package static let authorizePath = "/oauth/authorize"
    package static let loginPath = "/oauth/authorize/login"
    package static let consentPath = "/oauth/authorize/consent"
    package static let logoutPath = "/oauth/logout"
    package static let paths: Set<String> = [authorizePath, loginPath, consentPath, logoutPath, Stylesheet.path]

    /// The browser cookie lives a month: it only ties flows to this browser.
    static let browserCookieLifetime: Int64 = 30 * 86400

    /// What the pages need from the rest of the gateway; built by the server per loop.
    package struct Dependencies {
        /// `[auth.jwt] issuer`: the `iss` of every authorization response.
        package var issuer: String
        package var codeTTL: Int64
        package var sessionPolicy: BrowserSessionPolicy
        package var client: (String) -> EventLoopFuture<OAuthClient?>
        package var oauthStore: any OAuthStore
        package var browserState: any BrowserStateStore
        package var users: any SessionStore
        package var credentials: CredentialCheck
        package var logger: Logger
        package var clock: GatewayClock
        /// `[sso]`: provider buttons beside (or instead of) the password form.
        package var sso: SSOButtons = .passwordOnly

        package init(
            issuer: String,
            codeTTL: Int64,
            sessionPolicy: BrowserSessionPolicy,
            client: @escaping (String) -> EventLoopFuture<OAuthClient?>,
            oauthStore: any OAuthStore,
            browserState: any BrowserStateStore,
            users: any SessionStore,
            credentials: CredentialCheck,
            logger: Logger,
            clock: GatewayClock
        ) {
            self.issuer = issuer
            self.codeTTL = codeTTL
            self.sessionPolicy = sessionPolicy
            self.client = client
            self.oauthStore = oauthStore
            self.browserState = browserState
            self.users = users
            self.credentials = credentials
            self.logger = logger
            self.clock = clock
        }
    }

    private let deps: Dependencies
    private let sessions: BrowserSessions
    private let renderer = PageRenderer.standard

    package init(_ dependencies: Dependencies) {
        self.deps = dependencies
        self.sessions = BrowserSessions(
            store: dependencies.browserState,
            users: dependencies.users,
            policy: dependencies.sessionPolicy,
            clock: dependencies.clock
        )
    }

    package func handles(_ normalizedPath: String) -> Bool {
        normalizedPath.hasPrefix("/oauth/") && Self.paths.contains(normalizedPath)
    }

    package var routeLabel: String { "builtin oauth-pages" }
    package var maximumBodyBytes: Int64 { 16 * 1024 }

    package func errorResponse(_ error: GatewayError, request: LocalRequest) -> LocalResponse {
        PageResponses.error(error, requestID: request.requestID)
    }

    package func handle(_ request: LocalRequest, eventLoop: any EventLoop) -> EventLoopFuture<LocalResponse> {
        let method = request.method == "HEAD" ? "GET" : request.method
        switch (request.normalizedPath, method) {
        case (Stylesheet.path, "GET"):
            return eventLoop.makeSucceededFuture(PageResponses.stylesheet())
        case (Self.authorizePath, "GET"):
            return self.authorize(request, eventLoop: eventLoop)
        case (Self.loginPath, "POST"):
            return self.login(request, eventLoop: eventLoop)
        case (Self.consentPath, "GET"):
            return self.showFlow(request, eventLoop: eventLoop)
        case (Self.consentPath, "POST"):
            return self.decide(request, eventLoop: eventLoop)
        case (Self.logoutPath, "POST"):
            return self.logout(request, eventLoop: eventLoop)
        case (Self.logoutPath, "GET"):
            return eventLoop.makeSucceededFuture(
                PageResponses.page(
                    .error,
                    [
                        "title": "Signed out", "message": "You are signed out of DBAudit Gateway.",
                        "request_id": request.requestID,
                    ]
                )
            )
        default:
            let allowed =
                switch request.normalizedPath {
                case Self.loginPath: "POST"
                case Self.consentPath, Self.logoutPath: "GET, POST"
                default: "GET"
                }
            return eventLoop.makeSucceededFuture(
                PageResponses.error(
                    GatewayError(
                        status: 405,
                        code: "method_not_allowed",
                        description: "Use \(allowed) on \(request.normalizedPath).",
                        headers: [.init("Allow", allowed)]
                    ),
                    requestID: request.requestID
                )
            )
        }
    }

    // MARK: GET /oauth/authorize

    private func authorize(_ request: LocalRequest, eventLoop: any EventLoop) -> EventLoopFuture<LocalResponse> {
        let parsed: (fields: FormFields, clientID: String)
        switch AuthorizeValidation.parse(query: request.query) {
        case .failure(let error): return eventLoop.makeSucceededFuture(self.page(error, request))
        case .success(let value): parsed = value
        }
        return self.deps.client(parsed.clientID).assumeIsolated().flatMap { client -> EventLoopFuture<LocalResponse> in
            switch AuthorizeValidation.validate(fields: parsed.fields, client: client.map(Self.authorizeClient)) {
            case .page(let error):
                return eventLoop.makeSucceededFuture(self.page(error, request))
            case .redirect(let refusal):
                return self.sessions.current(request, eventLoop: eventLoop).assumeIsolated().flatMap { session in
                    if session != nil { return eventLoop.makeSucceededFuture(self.refuse(refusal)) }
                    // Signed out: sign in first, then the refusal (RFC 9700 §4.11.2).
                    let pending = AuthorizeRequest(
                        clientID: parsed.clientID,
                        redirectURI: refusal.redirectURI,
                        state: refusal.state,
                        requestedScopes: nil,
                        codeChallenge: nil
                    )
                    return self.startFlow(
                        pending,
                        refusal: refusal,
                        client: client!,
                        request: request,
                        eventLoop: eventLoop
                    )
                }.nonisolated()
            case .valid(let authorizeRequest):
                return self.startFlow(authorizeRequest, client: client!, request: request, eventLoop: eventLoop)
            }
        }.flatMapErrorThrowing { error in self.storeFailure(error, request) }.nonisolated()
    }

    static func authorizeClient(_ client: OAuthClient) -> AuthorizeClient {
        AuthorizeClient(
            id: client.id,
            name: client.name,
            redirectURIs: client.redirectURIs,
            scopes: client.scopes,
            isPublic: client.isPublic,
            allowsAuthorizationCode: client.allows(.authorizationCode)
        )
    }

    private func startFlow(
        _ authorizeRequest: AuthorizeRequest,
        refusal: AuthorizeErrorRedirect? = nil,
        client: OAuthClient,
        request: LocalRequest,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<LocalResponse> {
        var headers: [GatewayError.HeaderField] = []
        let browserCookie = BrowserCookies.browserName(isTLS: request.isTLS)
        let browser: String
        if let existing = BrowserCookies.value(named: browserCookie, in: request.values(of: "Cookie")) {
            browser = existing
        } else {
            browser = PageRandom.token()
            headers.append(
                BrowserCookies.set(
                    name: browserCookie,
                    value: browser,
                    maxAge: Self.browserCookieLifetime,
                    isTLS: request.isTLS
                )
            )
        }
        let flowID = PageRandom.token()
        let flow = AuthorizeFlow(
            request: authorizeRequest,
            refusal: refusal,
            csrfToken: CSRFCheck.newToken(),
            browserHash: PageRandom.hash(browser),
            createdAt: self.deps.clock.unixSeconds()
        )
        guard let json = flow.json() else { return eventLoop.makeFailedFuture(GatewayError.internalError) }
        let store = self.deps.browserState
        return self.deps.credentials.admit(
            address: request.clientAddress,
            account: nil,
            purpose: .authorize,
            eventLoop: eventLoop
        )
        .assumeIsolated().flatMap {
            store.storeFlow(id: flowID, json: json, ttl: AuthorizeFlow.lifetimeSeconds)
        }.flatMap {
            self.continueFlow(
                flowID: flowID,
                flow: flow,
                client: client,
                request: request,
                loginError: nil,
                eventLoop: eventLoop
            )
        }.map { response in
            var response = response
            response.headers += headers
            return response
        }.nonisolated()
    }

    // MARK: GET /oauth/authorize/consent?flow=...

    /// Where the flow stands for this browser: the sign-in form, the consent question, or
    /// (consent remembered) straight back to the client with a code.
    private func showFlow(_ request: LocalRequest, eventLoop: any EventLoop) -> EventLoopFuture<LocalResponse> {
        guard case .success(let fields) = FormFields.parse(request.query.utf8, maximumBytes: 1024),
            fields.duplicates.isEmpty,
            let flowID = fields["flow"]
        else {
            return eventLoop.makeSucceededFuture(PageResponses.error(Self.expiredFlow, requestID: request.requestID))
        }
        let loginError = fields["error"] == "credentials" ? "The e-mail address or password is incorrect." : nil
        return self.loadFlow(flowID, request: request, eventLoop: eventLoop).assumeIsolated().flatMap {
            loaded -> EventLoopFuture<LocalResponse> in
            guard let flow = loaded else {
                return eventLoop.makeSucceededFuture(
                    PageResponses.error(Self.expiredFlow, requestID: request.requestID)
                )
            }
            return self.withClient(flow, request: request, eventLoop: eventLoop) { client in
                self.continueFlow(
                    flowID: flowID,
                    flow: flow,
                    client: client,
                    request: request,
                    loginError: loginError,
                    eventLoop: eventLoop
                )
            }
        }.flatMapErrorThrowing { error in self.storeFailure(error, request) }.nonisolated()
    }

    private func continueFlow(
        flowID: String,
        flow: AuthorizeFlow,
        client: OAuthClient,
        request: LocalRequest,
        loginError: String?,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<LocalResponse> {
        self.sessions.current(request, eventLoop: eventLoop).assumeIsolated().flatMap {
            session -> EventLoopFuture<LocalResponse> in
            guard let session else {
                return eventLoop.makeSucceededFuture(
                    self.loginPage(flowID: flowID, flow: flow, client: client, error: loginError)
                )
            }
            if let refusal = flow.refusal {
                return self.finish(flowID: flowID, self.refuse(refusal), eventLoop: eventLoop)
            }
            guard let scopes = self.grantedScopes(flow, client: client, user: session.user) else {
                return self.finish(flowID: flowID, self.refuse(Self.scopeRefusal(flow)), eventLoop: eventLoop)
            }
            return self.deps.oauthStore.consent(userID: session.user.id, clientID: client.id).assumeIsolated().flatMap {
                remembered in
                // A public client cannot prove who it is: any program on the user's machine
                // can claim its loopback redirect URI, so the user is asked every time
                // (RFC 8252 §8.6). A confidential client's code is useless without its secret.
                if let remembered, !client.isPublic, Set(scopes).isSubset(of: Set(remembered)) {
                    return self.issueCode(
                        flowID: flowID,
                        flow: flow,
                        user: session.user,
                        scopes: scopes,
                        eventLoop: eventLoop
                    )
                }
                return eventLoop.makeSucceededFuture(
                    self.consentPage(flowID: flowID, flow: flow, client: client, session: session, scopes: scopes)
                )
            }.nonisolated()
        }.nonisolated()
    }

    // MARK: POST /oauth/authorize/login

    private func login(_ request: LocalRequest, eventLoop: any EventLoop) -> EventLoopFuture<LocalResponse> {
        self.checkedForm(request, eventLoop: eventLoop).assumeIsolated().flatMap {
            checked -> EventLoopFuture<LocalResponse> in
            let (fields, flowID, flow) = checked
            let flowPage = Self.consentPath + "?flow=" + flowID
            guard self.deps.sso.passwordLogin else {
                return eventLoop.makeSucceededFuture(
                    PageResponses.error(Self.passwordLoginOff, requestID: request.requestID)
                )
            }
            return self.deps.credentials.verify(
                email: fields["email"] ?? "",
                password: fields["password"] ?? "",
                clientAddress: request.clientAddress,
                eventLoop: eventLoop
            ).assumeIsolated().flatMap { user -> EventLoopFuture<LocalResponse> in
                self.sessions.create(for: user, request: request, eventLoop: eventLoop).map { cookie in
                    PageResponses.seeOther(flowPage, headers: [cookie])
                }
            }.flatMapError { error -> EventLoopFuture<LocalResponse> in
                if let error = error as? GatewayError, error.code == CredentialCheck.invalidCredentials.code {
                    self.deps.logger.info(
                        "browser sign-in refused",
                        metadata: ["event": "page_login_failed", "client_id": .string(flow.request.clientID)]
                    )
                    return eventLoop.makeSucceededFuture(PageResponses.seeOther(flowPage + "&error=credentials"))
                }
                return eventLoop.makeFailedFuture(error)
            }.nonisolated()
        }.flatMapErrorThrowing { error in self.storeFailure(error, request) }.nonisolated()
    }

    // MARK: POST /oauth/authorize/consent

    private func decide(_ request: LocalRequest, eventLoop: any EventLoop) -> EventLoopFuture<LocalResponse> {
        self.checkedForm(request, eventLoop: eventLoop).assumeIsolated().flatMap {
            checked -> EventLoopFuture<LocalResponse> in
            let (fields, flowID, flow) = checked
            guard let decision = fields["decision"], decision == "allow" || decision == "deny" else {
                return eventLoop.makeSucceededFuture(
                    PageResponses.error(
                        GatewayError.badRequest("Choose Allow or Deny."),
                        requestID: request.requestID
                    )
                )
            }
            return self.withClient(flow, request: request, eventLoop: eventLoop) { client in
                self.sessions.current(request, eventLoop: eventLoop).assumeIsolated().flatMap {
                    session -> EventLoopFuture<LocalResponse> in
                    // Signed out (or expired) meanwhile: back to the flow, which asks to sign in.
                    guard let session else {
                        return eventLoop.makeSucceededFuture(
                            PageResponses.seeOther(Self.consentPath + "?flow=" + flowID)
                        )
                    }
                    if let refusal = flow.refusal {
                        // A refused request only ever ends in its refusal, whatever is posted.
                        return self.finish(flowID: flowID, self.refuse(refusal), eventLoop: eventLoop)
                    }
                    guard decision == "allow" else {
                        self.deps.logger.info(
                            "consent denied",
                            metadata: ["event": "consent_denied", "client_id": .string(client.id)]
                        )
                        return self.finish(
                            flowID: flowID,
                            self.refuse(
                                AuthorizeErrorRedirect(
                                    redirectURI: flow.request.redirectURI,
                                    error: "access_denied",
                                    description: "The user denied access.",
                                    state: flow.request.state
                                )
                            ),
                            eventLoop: eventLoop
                        )
                    }
                    guard let scopes = self.grantedScopes(flow, client: client, user: session.user) else {
                        return self.finish(flowID: flowID, self.refuse(Self.scopeRefusal(flow)), eventLoop: eventLoop)
                    }
                    let store = self.deps.oauthStore
                    return store.consent(userID: session.user.id, clientID: client.id).assumeIsolated().flatMap {
                        remembered in
                        store.storeConsent(
                            userID: session.user.id,
                            clientID: client.id,
                            scopes: Array(Set(scopes + (remembered ?? []))).sorted()
                        )
                    }.flatMap {
                        self.issueCode(
                            flowID: flowID,
                            flow: flow,
                            user: session.user,
                            scopes: scopes,
                            eventLoop: eventLoop
                        )
                    }.nonisolated()
                }.nonisolated()
            }
        }.flatMapErrorThrowing { error in self.storeFailure(error, request) }.nonisolated()
    }

    // MARK: POST /oauth/logout

    private func logout(_ request: LocalRequest, eventLoop: any EventLoop) -> EventLoopFuture<LocalResponse> {
        guard case .success(let fields) = FormFields.parse(request.body), fields.duplicates.isEmpty else {
            return eventLoop.makeSucceededFuture(
                PageResponses.error(GatewayError.badRequest("The form is malformed."), requestID: request.requestID)
            )
        }
        let next =
            fields["flow"].flatMap { AuthorizeFlow.isValidID($0) ? Self.consentPath + "?flow=" + $0 : nil }
            ?? Self.logoutPath
        return self.sessions.current(request, eventLoop: eventLoop).assumeIsolated().flatMap {
            session -> EventLoopFuture<LocalResponse> in
            guard let session else {
                return eventLoop.makeSucceededFuture(
                    PageResponses.seeOther(next, headers: [BrowserSessions.clearCookie(request)])
                )
            }
            guard CSRFCheck.matches(posted: fields["csrf_token"], expected: session.record.csrfToken) else {
                return eventLoop.makeSucceededFuture(
                    PageResponses.error(Self.csrfRefusal, requestID: request.requestID)
                )
            }
            return self.sessions.end(session, request: request).map { cookie in
                PageResponses.seeOther(next, headers: [cookie])
            }
        }.flatMapErrorThrowing { error in self.storeFailure(error, request) }.nonisolated()
    }

    // MARK: pieces

    private static let expiredFlow = GatewayError(
        status: 400,
        code: "invalid_request",
        description: "This sign-in request has expired or is unknown. Go back to the application and start again."
    )

    static let passwordLoginOff = GatewayError(
        status: 403,
        code: "password_login_disabled",
        description: "This gateway does not take passwords: sign in with one of the providers on the sign-in page."
    )

    private static let csrfRefusal = GatewayError(
        status: 403,
        code: "csrf_failed",
        description: "This form has expired or did not come from this page. Go back to the application and start again."
    )

    private static let otherBrowser = GatewayError(
        status: 403,
        code: "csrf_failed",
        description:
            "This sign-in request was started in another browser. Go back to the application and start again here."
    )

    /// The posted form, its flow, and the checks every flow form passes: the flow exists,
    /// belongs to this browser, and the CSRF token is the flow's. Refusals are pages (403).
    private func checkedForm(
        _ request: LocalRequest,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<(FormFields, String, AuthorizeFlow)> {
        guard case .success(let fields) = FormFields.parse(request.body), fields.duplicates.isEmpty else {
            return eventLoop.makeFailedFuture(GatewayError.badRequest("The form is malformed."))
        }
        guard let flowID = fields["flow"] else { return eventLoop.makeFailedFuture(Self.csrfRefusal) }
        return self.loadFlow(flowID, request: request, eventLoop: eventLoop).flatMapThrowing { loaded in
            guard let flow = loaded else { throw Self.expiredFlow }
            guard CSRFCheck.matches(posted: fields["csrf_token"], expected: flow.csrfToken) else {
                throw Self.csrfRefusal
            }
            return (fields, flowID, flow)
        }
    }

    /// The flow `flowID` if it exists and this browser started it (fails with a 403 page
    /// otherwise); nil if unknown or expired.
    private func loadFlow(
        _ flowID: String,
        request: LocalRequest,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<AuthorizeFlow?> {
        guard AuthorizeFlow.isValidID(flowID) else { return eventLoop.makeSucceededFuture(nil) }
        let browser = BrowserCookies.value(
            named: BrowserCookies.browserName(isTLS: request.isTLS),
            in: request.values(of: "Cookie")
        )
        return self.deps.browserState.flow(id: flowID).flatMapThrowing { json in
            guard let json else { return nil }
            guard let flow = AuthorizeFlow.decode(json) else { throw CredentialStoreError.corrupt("flow") }
            guard let browser, CSRFCheck.matches(posted: PageRandom.hash(browser), expected: flow.browserHash) else {
                throw Self.otherBrowser
            }
            return flow
        }
    }

    private func withClient(
        _ flow: AuthorizeFlow,
        request: LocalRequest,
        eventLoop: any EventLoop,
        _ body: @escaping (OAuthClient) -> EventLoopFuture<LocalResponse>
    ) -> EventLoopFuture<LocalResponse> {
        self.deps.client(flow.request.clientID).assumeIsolated().flatMap { client -> EventLoopFuture<LocalResponse> in
            // Removed (or its redirect URI dropped) since the flow started: no redirect.
            guard let client,
                client.redirectURIs.contains(where: {
                    OAuthRedirectURI.matches(registered: $0, presented: flow.request.redirectURI)
                })
            else {
                return eventLoop.makeSucceededFuture(
                    PageResponses.error(
                        GatewayError(
                            status: 400,
                            code: "invalid_client",
                            description: "The application is no longer registered with this gateway."
                        ),
                        requestID: request.requestID
                    )
                )
            }
            return body(client)
        }.nonisolated()
    }

    private func grantedScopes(_ flow: AuthorizeFlow, client: OAuthClient, user: UserRecord) -> [String]? {
        AuthorizeValidation.grantedScopes(
            requested: flow.request.requestedScopes,
            clientScopes: client.scopes,
            userScopes: user.scopes
        )
    }

    private static func scopeRefusal(_ flow: AuthorizeFlow) -> AuthorizeErrorRedirect {
        AuthorizeErrorRedirect(
            redirectURI: flow.request.redirectURI,
            error: "invalid_scope",
            description: flow.request.requestedScopes == nil
                ? "The user holds none of the scopes this client is registered for."
                : "The user does not hold every requested scope.",
            state: flow.request.state
        )
    }

    /// Ends the flow, then stores a code for `user` and sends the browser back with it. The
    /// code is 32 random bytes; only its SHA-256 is stored.
    private func issueCode(
        flowID: String,
        flow: AuthorizeFlow,
        user: UserRecord,
        scopes: [String],
        eventLoop: any EventLoop
    ) -> EventLoopFuture<LocalResponse> {
        let store = self.deps.oauthStore
        let logger = self.deps.logger
        let issuer = self.deps.issuer
        let now = self.deps.clock.unixSeconds()
        let codeTTL = self.deps.codeTTL
        return self.finish(flowID: flowID, eventLoop: eventLoop) {
            let code = PageRandom.token()
            let record = AuthorizationCodeRecord(
                clientID: flow.request.clientID,
                redirectURI: flow.request.redirectURI,
                codeChallenge: flow.request.codeChallenge,
                userID: user.id,
                email: user.email,
                scopes: scopes,
                issuedAt: now,
                expiresAt: now + codeTTL
            )
            let location = AuthorizeValidation.location(
                redirectURI: flow.request.redirectURI,
                parameters: [("code", code), ("state", flow.request.state)],
                issuer: issuer
            )
            return store.storeCode(codeHash: PageRandom.hash(code), record: record, now: now).map {
                logger.info(
                    "authorization code issued",
                    metadata: [
                        "event": "oauth_code_issued", "client_id": .string(flow.request.clientID),
                        "subject": .string(user.id),
                    ]
                )
                return PageResponses.seeOther(location)
            }
        }
    }

    /// Ends the flow with `answer`: the flow record is deleted first, and only the request
    /// that deleted it answers, so a flow yields at most one code or refusal even when its
    /// form is posted twice at once; the others see an expired flow.
    private func finish(
        flowID: String,
        eventLoop: any EventLoop,
        _ answer: @escaping () -> EventLoopFuture<LocalResponse>
    ) -> EventLoopFuture<LocalResponse> {
        self.deps.browserState.deleteFlow(id: flowID).assumeIsolated().flatMap {
            existed -> EventLoopFuture<LocalResponse> in
            guard existed else { return eventLoop.makeFailedFuture(Self.expiredFlow) }
            return answer()
        }.nonisolated()
    }

    private func finish(
        flowID: String,
        _ response: LocalResponse,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<LocalResponse> {
        self.finish(flowID: flowID, eventLoop: eventLoop) { eventLoop.makeSucceededFuture(response) }
    }

    /// An error sent back to the client (303 with `error`, `error_description`, `state`, `iss`).
    private func refuse(_ refusal: AuthorizeErrorRedirect) -> LocalResponse {
        PageResponses.seeOther(
            AuthorizeValidation.location(
                redirectURI: refusal.redirectURI,
                parameters: [
                    ("error", refusal.error), ("error_description", refusal.description), ("state", refusal.state),
                ],
                issuer: self.deps.issuer
            )
        )
    }

    private func page(_ error: AuthorizeValidation.PageError, _ request: LocalRequest) -> LocalResponse {
        PageResponses.error(
            GatewayError(status: error.status, code: error.code, description: error.message),
            requestID: request.requestID
        )
    }

    private func loginPage(flowID: String, flow: AuthorizeFlow, client: OAuthClient, error: String?) -> LocalResponse {
        var context: [String: Any] = [
            "title": "Sign in", "client_name": client.name, "flow": flowID, "csrf_token": flow.csrfToken,
            "action": Self.loginPath,
        ]
        if let error { context["error"] = error }
        context.merge(SSOTemplate.context(self.deps.sso) { "/sso/start?provider=\($0)&flow=\(flowID)" }) { _, new in new
        }
        return PageResponses.page(
            .login,
            context,
            formActionOrigin: Self.origin(of: flow.request.redirectURI),
            renderer: self.renderer
        )
    }

    private func consentPage(
        flowID: String,
        flow: AuthorizeFlow,
        client: OAuthClient,
        session: BrowserSessions.Active,
        scopes: [String]
    ) -> LocalResponse {
        let origin = Self.origin(of: flow.request.redirectURI)
        let context: [String: Any] = [
            "title": "Allow access?", "client_name": client.name, "user_email": session.user.displayEmail,
            "scopes": scopes.map { ["name": $0, "description": OAuthScopeCatalog.description(of: $0) ?? $0] },
            "redirect_origin": origin ?? flow.request.redirectURI, "flow": flowID, "csrf_token": flow.csrfToken,
            "action": Self.consentPath, "logout_action": Self.logoutPath,
            "session_csrf_token": session.record.csrfToken,
        ]
        return PageResponses.page(.consent, context, formActionOrigin: origin, renderer: self.renderer)
    }

    /// `scheme://host[:port]` of a redirect URI: what the flow pages add to `form-action`,
    /// because Chromium checks the redirects after a form submission against it.
    package static func origin(of uri: String) -> String? {
        guard let schemeEnd = uri.range(of: "://") else { return nil }
        let afterScheme = uri[schemeEnd.upperBound...]
        let end = afterScheme.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? afterScheme.endIndex
        let authority = afterScheme[..<end]
        guard !authority.isEmpty, !authority.contains("@"), !authority.contains(" "), !authority.contains(";"),
            !authority.contains(",")
        else { return nil }
        let scheme = String(uri[..<schemeEnd.upperBound])
        // A CSP source cannot name an IPv6 literal (Chromium ignores `http://[::1]:port`):
        // the loopback `[::1]` is allowed as any host on that scheme and port instead.
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            return scheme + "*" + authority[authority.index(after: close)...]
        }
        return scheme + authority
    }

    /// A failure as a page: refusals keep their status; a store that cannot be asked is 503.
    private func storeFailure(_ error: any Error, _ request: LocalRequest) -> LocalResponse {
        switch error {
        case let error as GatewayError:
            return PageResponses.error(error, requestID: request.requestID)
        case CredentialStoreError.unavailable:
            return PageResponses.error(GatewayError.authUnavailable, requestID: request.requestID)
        default:
            self.deps.logger.error(
                "authorization page failed",
                metadata: ["reason": "\(error)", "request_id": .string(request.requestID)]
            )
            return PageResponses.error(GatewayError.internalError, requestID: request.requestID)
        }
    }
}
