import Foundation
package import GatewayAuth
package import GatewayCore
import GatewayCrypto
import GatewayOAuth
package import GatewayStore
package import Logging
package import NIOCore

/// Settings > API Keys in the browser, under `[ui] path_prefix` (default `/settings`): a
/// sign-in page (the users of `users add`), the key list, the "Create API Key" form, the
/// show-once page of a new key, revocation with a confirmation step, sign-out. Keys are
/// created, listed and revoked through `APIKeyService` (the `/v1/api-keys` rules: the
/// owner's cap, nobody grants a scope they lack); an admin sees and revokes every key, a
/// user only their own. Every page is HTML with the page-layer security headers; every
/// form carries the session's CSRF token (the sign-in form a token bound to the browser
/// cookie) and every accepted POST answers 303; posts count against the per-address login
/// limit in buckets of their own. One instance per event loop, rebuilt on reload; touched
/// only on its loop.
package final class SettingsPages: LocalEndpoint {
    /// What the pages need from the rest of the gateway; built by the server per loop.
    package struct Dependencies {
        package var prefix: String
        package var sessionPolicy: BrowserSessionPolicy
        package var browserState: any BrowserStateStore
        package var users: any SessionStore
        package var credentials: CredentialCheck
        package var keys: APIKeyService
        package var maxKeysPerOwner: Int?
        package var logger: Logger
        package var clock: GatewayClock
        /// `[sso]`: provider buttons beside (or instead of) the password form.
        package var sso: SSOButtons = .passwordOnly

        package init(
            prefix: String,
            sessionPolicy: BrowserSessionPolicy,
            browserState: any BrowserStateStore,
            users: any SessionStore,
            credentials: CredentialCheck,
            keys: APIKeyService,
            maxKeysPerOwner: Int?,
            logger: Logger,
            clock: GatewayClock
        ) {
            self.prefix = prefix
            self.sessionPolicy = sessionPolicy
            self.browserState = browserState
            self.users = users
            self.credentials = credentials
            self.keys = keys
            self.maxKeysPerOwner = maxKeysPerOwner
            self.logger = logger
            self.clock = clock
        }
    }

    /// Keys shown per list page.
    package static let pageSize = 50

    static let renderer = PageRenderer(pages: [
        "header": SettingsHeaderTemplate.text,
        "login": SettingsLoginTemplate.text,
        "keys": KeyListTemplate.text,
        "new": KeyCreateTemplate.text,
        "created": KeyCreatedTemplate.text,
        "revoke": KeyRevokeTemplate.text,
        "error": ErrorTemplate.text,
    ])

    private let deps: Dependencies
    package let paths: SettingsPaths
    private let sessions: BrowserSessions

    package init(_ dependencies: Dependencies) {
        self.deps = dependencies
        self.paths = SettingsPaths(prefix: dependencies.prefix)
        self.sessions = BrowserSessions(
            store: dependencies.browserState,
            users: dependencies.users,
            policy: dependencies.sessionPolicy,
            clock: dependencies.clock
        )
    }

    package func handles(_ normalizedPath: String) -> Bool { self.paths.handles(normalizedPath) }
    package var routeLabel: String { "builtin settings-pages" }
    package var maximumBodyBytes: Int64 { 16 * 1024 }

    package func errorResponse(_ error: GatewayError, request: LocalRequest) -> LocalResponse {
        self.errorPage(error, request)
    }

    package func handle(_ request: LocalRequest, eventLoop: any EventLoop) -> EventLoopFuture<LocalResponse> {
        // HEAD reads like GET, except on the show-once page: reading it uses the key up, and
        // a link checker or `curl -I` must not take it from the user.
        let method = request.method == "HEAD" && request.normalizedPath != self.paths.created ? "GET" : request.method
        let paths = self.paths
        let path = request.normalizedPath
        let response: EventLoopFuture<LocalResponse>
        switch (path, method) {
        case (paths.prefix, "GET"), (paths.prefix + "/", "GET"):
            response = eventLoop.makeSucceededFuture(PageResponses.seeOther(paths.keys))
        case (paths.stylesheet, "GET"):
            response = eventLoop.makeSucceededFuture(
                Self.asset(Stylesheet.text + SettingsStylesheet.extra, type: "text/css; charset=utf-8")
            )
        case (paths.script, "GET"):
            response = eventLoop.makeSucceededFuture(
                Self.asset(CopyScript.text, type: "text/javascript; charset=utf-8")
            )
        case (paths.login, "GET"):
            response = self.loginForm(request, eventLoop: eventLoop)
        case (paths.login, "POST"):
            response = self.login(request, eventLoop: eventLoop)
        case (paths.logout, "POST"):
            response = self.logout(request, eventLoop: eventLoop)
        case (paths.keys, "GET"):
            response = self.signedIn(request, eventLoop: eventLoop) { self.list($0, request, eventLoop: eventLoop) }
        case (paths.keys, "POST"):
            response = self.posted(request, eventLoop: eventLoop) { self.create($0, $1, request, eventLoop: eventLoop) }
        case (paths.newKey, "GET"):
            response = self.signedIn(request, eventLoop: eventLoop) {
                eventLoop.makeSucceededFuture(self.createForm($0, request))
            }
        case (paths.created, "GET"):
            response = self.signedIn(request, eventLoop: eventLoop) { self.reveal($0, request, eventLoop: eventLoop) }
        case (paths.revoke, "GET"):
            response = self.signedIn(request, eventLoop: eventLoop) {
                self.confirmRevoke($0, request, eventLoop: eventLoop)
            }
        case (paths.revoke, "POST"):
            response = self.posted(request, eventLoop: eventLoop) { self.revoke($0, $1, request, eventLoop: eventLoop) }
        default:
            let allowed: String? =
                switch path {
                case paths.login, paths.revoke: "GET, POST"
                case paths.keys: "GET, POST"
                case paths.logout: "POST"
                case paths.prefix, paths.stylesheet, paths.script, paths.newKey, paths.created: "GET"
                default: nil
                }
            let error =
                allowed.map {
                    GatewayError(
                        status: 405,
                        code: "method_not_allowed",
                        description: "Use \($0) on \(path).",
                        headers: [.init("Allow", $0)]
                    )
                } ?? GatewayError(status: 404, code: "not_found", description: "There is no settings page here.")
            response = eventLoop.makeSucceededFuture(self.errorPage(error, request))
        }
        return response.assumeIsolated().flatMapErrorThrowing { error in self.failure(error, request) }.nonisolated()
    }

    // MARK: sign-in and sign-out

    /// The sign-in form's CSRF token: derived from the browser cookie (random, HttpOnly), so
    /// only a page this browser loaded from us can post it, with nothing stored per visit.
    static func loginToken(browser: String) -> String {
        Base64URL.encode(HMACSHA256(key: Array(browser.utf8)).authenticationCode(for: Array("settings-login".utf8)))
    }

    private func loginForm(_ request: LocalRequest, eventLoop: any EventLoop) -> EventLoopFuture<LocalResponse> {
        let query = Self.query(request)
        let next = self.paths.afterLogin(query?["next"])
        return self.sessions.current(request, eventLoop: eventLoop).assumeIsolated().map { session in
            if session != nil { return PageResponses.seeOther(next) }
            var headers: [GatewayError.HeaderField] = []
            let name = BrowserCookies.browserName(isTLS: request.isTLS)
            let browser: String
            if let existing = BrowserCookies.value(named: name, in: request.values(of: "Cookie")) {
                browser = existing
            } else {
                browser = PageRandom.token()
                headers.append(BrowserCookies.set(name: name, value: browser, maxAge: 30 * 86400, isTLS: request.isTLS))
            }
            var context = self.context(title: "Sign in", nav: nil)
            context["action"] = self.paths.login
            context["csrf_token"] = Self.loginToken(browser: browser)
            context["next"] = next
            context.merge(
                SSOTemplate.context(self.deps.sso) { "/sso/start?provider=\($0)&next=\(FormFields.encode(next))" }
            ) { _, new in new }
            switch query?["error"] {
            case "credentials": context["error"] = "The e-mail address or password is incorrect."
            case "expired": context["error"] = "The sign-in form had expired; sign in again."
            default: break
            }
            if query?["signed_out"] == "1" { context["notice"] = "You are signed out." }
            return self.page("login", context, headers: headers)
        }.nonisolated()
    }

    private func login(_ request: LocalRequest, eventLoop: any EventLoop) -> EventLoopFuture<LocalResponse> {
        guard case .success(let fields) = FormFields.parse(request.body), fields.duplicates.isEmpty else {
            return eventLoop.makeSucceededFuture(
                self.errorPage(GatewayError.badRequest("The form is malformed."), request)
            )
        }
        let next = self.paths.afterLogin(fields["next"])
        let browser = BrowserCookies.value(
            named: BrowserCookies.browserName(isTLS: request.isTLS),
            in: request.values(of: "Cookie")
        )
        guard let browser, CSRFCheck.matches(posted: fields["csrf_token"], expected: Self.loginToken(browser: browser))
        else {
            return eventLoop.makeSucceededFuture(self.errorPage(Self.csrfRefusal, request))
        }
        guard self.deps.sso.passwordLogin else {
            return eventLoop.makeSucceededFuture(self.errorPage(AuthorizePages.passwordLoginOff, request))
        }
        return self.deps.credentials.verify(
            email: fields["email"] ?? "",
            password: fields["password"] ?? "",
            clientAddress: request.clientAddress,
            eventLoop: eventLoop
        ).assumeIsolated().flatMap { user in
            self.sessions.create(for: user, request: request, eventLoop: eventLoop).assumeIsolated().map { cookie in
                self.deps.logger.info(
                    "settings sign-in",
                    metadata: ["event": "settings_login", "subject": .string(user.id)]
                )
                return PageResponses.seeOther(next, headers: [cookie])
            }.nonisolated()
        }.flatMapError { error in
            if let error = error as? GatewayError, error.code == CredentialCheck.invalidCredentials.code {
                self.deps.logger.info("settings sign-in refused", metadata: ["event": "settings_login_failed"])
                return eventLoop.makeSucceededFuture(
                    PageResponses.seeOther(
                        self.paths.login + "?next=" + FormFields.encode(next) + "&error=credentials"
                    )
                )
            }
            return eventLoop.makeFailedFuture(error)
        }.nonisolated()
    }

    private func logout(_ request: LocalRequest, eventLoop: any EventLoop) -> EventLoopFuture<LocalResponse> {
        guard case .success(let fields) = FormFields.parse(request.body), fields.duplicates.isEmpty else {
            return eventLoop.makeSucceededFuture(
                self.errorPage(GatewayError.badRequest("The form is malformed."), request)
            )
        }
        let signedOut = self.paths.login + "?signed_out=1"
        return self.sessions.current(request, eventLoop: eventLoop).assumeIsolated().flatMap { session in
            guard let session else {
                return eventLoop.makeSucceededFuture(
                    PageResponses.seeOther(signedOut, headers: [BrowserSessions.clearCookie(request)])
                )
            }
            guard CSRFCheck.matches(posted: fields["csrf_token"], expected: session.record.csrfToken) else {
                return eventLoop.makeSucceededFuture(self.errorPage(Self.csrfRefusal, request))
            }
            return self.sessions.end(session, request: request).map { PageResponses.seeOther(signedOut, headers: [$0]) }
        }.nonisolated()
    }

    // MARK: the key list

    private func list(
        _ session: BrowserSessions.Active,
        _ request: LocalRequest,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<LocalResponse> {
        let query = Self.query(request)
        let offset = query?["cursor"].flatMap { $0.utf8.count <= 9 ? Int($0) : nil }.map { max(0, $0) } ?? 0
        let isAdmin = Self.isAdmin(session.user)
        return self.deps.keys.list(owner: isAdmin ? nil : session.user.id, offset: offset, limit: Self.pageSize)
            .assumeIsolated().map { page in
                let now = self.deps.clock.unixSeconds()
                // Admins page through the whole index, where revoked keys stay; they are not shown.
                let records = page.records.filter { !$0.revoked && (isAdmin || $0.owner == session.user.id) }
                var context = self.context(title: "API keys", nav: session)
                context["new_key"] = self.paths.newKey
                context["is_admin"] = isAdmin
                context["empty"] = records.isEmpty && offset == 0
                context["keys"] = records.map { self.keyContext($0, viewer: session.user, now: now) }
                if let next = page.nextOffset { context["next_page"] = self.paths.keys + "?cursor=\(next)" }
                switch query?["notice"] {
                case "revoked": context["notice"] = "The key is revoked: every request with it is refused from now on."
                default: break
                }
                return self.page("keys", context)
            }.nonisolated()
    }

    private func keyContext(_ record: APIKeyRecord, viewer: UserRecord, now: Int64) -> [String: Any] {
        var context: [String: Any] = [
            "id": record.id, "name": record.name, "environment": record.environment,
            "display": (record.environment == "test" ? APIKeyFormat.testPrefix : APIKeyFormat.livePrefix) + "…"
                + record.last4,
            "scopes": record.scopes.map { ["name": $0] },
            "created": SettingsClock.text(record.createdAt),
            "last_used": record.lastUsedAt.map(SettingsClock.text) ?? "Never",
            "expires": record.expiresAt.map { ($0 <= now ? "Expired " : "") + SettingsClock.text($0) } ?? "Never",
            "tier": record.rateLimit ?? "Route default",
            "revoke": self.paths.revoke + "?id=" + FormFields.encode(record.id),
        ]
        if record.owner != viewer.id { context["owner"] = record.owner }
        return context
    }

    // MARK: creating a key

    private func offeredScopes(_ user: UserRecord) -> [String] {
        Scopes.all.filter { Self.isAdmin(user) || user.scopes.contains($0) }
    }

    /// The form, blank or (after a refused post, whose fields come back in the query) with
    /// each field's error next to it.
    private func createForm(_ session: BrowserSessions.Active, _ request: LocalRequest) -> LocalResponse {
        let offered = self.offeredScopes(session.user)
        var form = KeyCreateForm()
        if let query = Self.query(request), query["retry"] == "1" {
            var fields = query
            fields.values["retry"] = nil
            form = KeyCreateForm.parse(fields, offered: offered) ?? form
        }
        var context = self.context(title: "Create API Key", nav: session)
        context["action"] = self.paths.keys
        context["cancel"] = self.paths.keys
        context["csrf_token"] = session.record.csrfToken
        context["name"] = form.name
        context["max_name"] = String(KeyCreateForm.maximumNameCharacters)
        context["scopes"] = offered.map { scope -> [String: Any] in
            [
                "field": KeyCreateForm.field(of: scope), "name": scope,
                "description": OAuthScopeCatalog.description(of: scope) ?? scope,
                "checked": form.scopes.contains(scope),
            ]
        }
        context["live"] = !form.test
        context["test"] = form.test
        context["expiries"] = KeyCreateForm.expiryChoices.map {
            ["value": $0.value, "label": $0.label, "checked": $0.value == form.expires]
        }
        context["has_errors"] = !form.errors.isEmpty
        for (field, message) in form.errors { context["error_" + field] = message }
        return self.page("new", context)
    }

    private func create(
        _ session: BrowserSessions.Active,
        _ fields: FormFields,
        _ request: LocalRequest,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<LocalResponse> {
        guard let form = KeyCreateForm.parse(fields, offered: self.offeredScopes(session.user)) else {
            return eventLoop.makeSucceededFuture(
                self.errorPage(
                    GatewayError.badRequest("The form holds fields it never has; nothing was created."),
                    request
                )
            )
        }
        guard form.isValid else {
            // Back to the form (303), the fields in the query: the name is not a secret.
            var query =
                "retry=1&name=" + FormFields.encode(form.name) + "&environment="
                + (fields["environment"].map(FormFields.encode) ?? "")
                + "&expires=" + (fields["expires"].map(FormFields.encode) ?? "")
            for scope in form.scopes { query += "&" + FormFields.encode(KeyCreateForm.field(of: scope)) + "=on" }
            return eventLoop.makeSucceededFuture(PageResponses.seeOther(self.paths.newKey + "?" + query))
        }
        let user = session.user
        let grantor = Principal(subject: user.id, kind: .jwt, scopes: user.scopes)
        return self.deps.keys.create(
            name: form.name,
            scopes: form.scopes,
            expiresInSeconds: form.expiresInSeconds,
            test: form.test,
            owner: user.id,
            grantor: grantor,
            now: self.deps.clock.unixSeconds(),
            maxKeysPerOwner: self.deps.maxKeysPerOwner
        ).assumeIsolated().flatMap { created in
            let cookie = PageRandom.token()
            let reveal = KeyReveal.seal(
                key: created.key,
                cookie: cookie,
                userID: user.id,
                keyID: created.record.id,
                name: created.record.name
            )
            guard let json = reveal.json() else { return eventLoop.makeFailedFuture(GatewayError.internalError) }
            self.deps.logger.info(
                "API key created in the settings pages",
                metadata: [
                    "event": "settings_key_created", "key_id": .string(created.record.id), "subject": .string(user.id),
                ]
            )
            return self.deps.browserState.storeFlow(
                id: KeyReveal.recordID(cookie: cookie),
                json: json,
                ttl: KeyReveal.lifetimeSeconds
            ).assumeIsolated().map {
                PageResponses.seeOther(
                    self.paths.created,
                    headers: [
                        BrowserCookies.set(
                            name: KeyReveal.cookieName(isTLS: request.isTLS),
                            value: cookie,
                            maxAge: KeyReveal.lifetimeSeconds,
                            isTLS: request.isTLS
                        )
                    ]
                )
            }.nonisolated()
        }.nonisolated()
    }

    /// The show-once page: the record is deleted before the key is shown, and the cookie
    /// cleared, so a reload or Back finds nothing.
    private func reveal(
        _ session: BrowserSessions.Active,
        _ request: LocalRequest,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<LocalResponse> {
        let cookieName = KeyReveal.cookieName(isTLS: request.isTLS)
        let clear = BrowserCookies.clear(name: cookieName, isTLS: request.isTLS)
        let gone = self.errorPage(
            GatewayError(
                status: 404,
                code: "not_found",
                description:
                    "A new API key is shown only once, right after it is created. If you did not copy it, revoke it and create another."
            ),
            request,
            title: "Key no longer shown",
            headers: [clear],
            nav: session
        )
        guard let cookie = BrowserCookies.value(named: cookieName, in: request.values(of: "Cookie")) else {
            return eventLoop.makeSucceededFuture(gone)
        }
        let id = KeyReveal.recordID(cookie: cookie)
        let store = self.deps.browserState
        return store.flow(id: id).assumeIsolated().flatMap { json in
            guard let json else { return eventLoop.makeSucceededFuture(gone) }
            // Only the request that deleted the record shows the key: two at once get it once.
            return store.deleteFlow(id: id).assumeIsolated().map { deleted in
                guard deleted, let reveal = KeyReveal.decode(json), reveal.userID == session.user.id,
                    let key = reveal.open(cookie: cookie)
                else {
                    return gone
                }
                var context = self.context(title: "Your new API key", nav: session)
                context["scripts"] = [["src": self.paths.script]]
                context["key"] = key
                context["name"] = reveal.name
                context["id"] = reveal.keyID
                context["keys"] = self.paths.keys
                var response = self.page("created", context, headers: [clear])
                response.headers = response.headers.map { field in
                    field.name == "Content-Security-Policy" ? .init(field.name, Self.revealPolicy) : field
                }
                return response
            }.nonisolated()
        }.nonisolated()
    }

    /// The show-once page's policy: the page-layer one plus our own script.
    package static let revealPolicy = PageHeaders.contentSecurityPolicy.replacingOccurrences(
        of: "default-src 'none';",
        with: "default-src 'none'; script-src 'self';"
    )

    // MARK: revoking a key

    /// The key `id` if this user may revoke it (their own, or any for an admin) and it is
    /// not revoked; nil otherwise (someone else's key is reported as absent).
    private func revocable(
        _ id: String?,
        session: BrowserSessions.Active,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<APIKeyRecord?> {
        guard let id else { return eventLoop.makeSucceededFuture(nil) }
        let user = session.user
        return self.deps.keys.record(id: id).assumeIsolated().map { record in
            guard let record, !record.revoked, Self.isAdmin(user) || record.owner == user.id else { return nil }
            return record
        }.nonisolated()
    }

    private static let noSuchKey = GatewayError(
        status: 404,
        code: "not_found",
        description: "No API key of yours has this id."
    )

    private func confirmRevoke(
        _ session: BrowserSessions.Active,
        _ request: LocalRequest,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<LocalResponse> {
        self.revocable(Self.query(request)?["id"], session: session, eventLoop: eventLoop).assumeIsolated().map {
            record in
            guard let record else { return self.errorPage(Self.noSuchKey, request, nav: session) }
            var context = self.context(title: "Revoke API key?", nav: session)
            context["action"] = self.paths.revoke
            context["cancel"] = self.paths.keys
            context["csrf_token"] = session.record.csrfToken
            context["id"] = record.id
            context["name"] = record.name
            context["display"] =
                (record.environment == "test" ? APIKeyFormat.testPrefix : APIKeyFormat.livePrefix) + "…" + record.last4
            if record.owner != session.user.id { context["owner"] = record.owner }
            return self.page("revoke", context)
        }.nonisolated()
    }

    private func revoke(
        _ session: BrowserSessions.Active,
        _ fields: FormFields,
        _ request: LocalRequest,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<LocalResponse> {
        self.revocable(fields["id"], session: session, eventLoop: eventLoop).assumeIsolated().flatMap { record in
            guard let record else {
                return eventLoop.makeSucceededFuture(self.errorPage(Self.noSuchKey, request, nav: session))
            }
            // The service's revocation: the store publishes it and every instance drops the key.
            return self.deps.keys.revoke(id: record.id).assumeIsolated().map { _ in
                self.deps.logger.info(
                    "API key revoked in the settings pages",
                    metadata: [
                        "event": "settings_key_revoked", "key_id": .string(record.id),
                        "subject": .string(session.user.id),
                    ]
                )
                return PageResponses.seeOther(self.paths.keys + "?notice=revoked")
            }.nonisolated()
        }.nonisolated()
    }

    // MARK: pieces

    static let csrfRefusal = GatewayError(
        status: 403,
        code: "csrf_failed",
        description: "This form has expired or did not come from this page. Reload the page and try again."
    )

    static func isAdmin(_ user: UserRecord) -> Bool { user.scopes.contains("admin") }

    private static func query(_ request: LocalRequest) -> FormFields? {
        guard case .success(let fields) = FormFields.parse(request.query.utf8, maximumBytes: 2048),
            fields.duplicates.isEmpty
        else { return nil }
        return fields
    }

    /// A page for signed-in browsers; others go to the sign-in page, which comes back here.
    private func signedIn(
        _ request: LocalRequest,
        eventLoop: any EventLoop,
        _ body: @escaping (BrowserSessions.Active) -> EventLoopFuture<LocalResponse>
    ) -> EventLoopFuture<LocalResponse> {
        self.sessions.current(request, eventLoop: eventLoop).assumeIsolated().flatMap { session in
            guard let session else {
                return eventLoop.makeSucceededFuture(
                    PageResponses.seeOther(self.paths.loginLocation(next: request.normalizedPath))
                )
            }
            return body(session)
        }.nonisolated()
    }

    /// A form post of a signed-in browser: counted against the per-address limit, then its
    /// CSRF token checked against the session's (403 page, nothing done, when it is missing
    /// or another session's). A browser signed out meanwhile goes to the sign-in page.
    private func posted(
        _ request: LocalRequest,
        eventLoop: any EventLoop,
        _ body: @escaping (BrowserSessions.Active, FormFields) -> EventLoopFuture<LocalResponse>
    ) -> EventLoopFuture<LocalResponse> {
        guard case .success(let fields) = FormFields.parse(request.body), fields.duplicates.isEmpty else {
            return eventLoop.makeSucceededFuture(
                self.errorPage(GatewayError.badRequest("The form is malformed."), request)
            )
        }
        return self.deps.credentials.admit(
            address: request.clientAddress,
            account: nil,
            purpose: .settings,
            eventLoop: eventLoop
        ).assumeIsolated().flatMap {
            self.sessions.current(request, eventLoop: eventLoop)
        }.flatMap { session in
            guard let session else {
                return eventLoop.makeSucceededFuture(
                    PageResponses.seeOther(self.paths.loginLocation(next: self.paths.keys))
                )
            }
            guard CSRFCheck.matches(posted: fields["csrf_token"], expected: session.record.csrfToken) else {
                self.deps.logger.info(
                    "settings form refused",
                    metadata: ["event": "settings_csrf_failed", "subject": .string(session.user.id)]
                )
                return eventLoop.makeSucceededFuture(self.errorPage(Self.csrfRefusal, request, nav: session))
            }
            return body(session, fields)
        }.nonisolated()
    }

    private func context(title: String, nav session: BrowserSessions.Active?) -> [String: Any] {
        var context: [String: Any] = ["title": title, "stylesheet": self.paths.stylesheet]
        if let session {
            context["nav"] =
                [
                    "email": session.user.displayEmail, "is_admin": Self.isAdmin(session.user), "keys": self.paths.keys,
                    "logout": self.paths.logout, "csrf_token": session.record.csrfToken,
                ] as [String: Any]
        }
        return context
    }

    private func page(
        _ name: String,
        _ context: [String: Any],
        status: Int = 200,
        headers: [GatewayError.HeaderField] = []
    ) -> LocalResponse {
        PageResponses.page(named: name, context, status: status, headers: headers, renderer: Self.renderer)
    }

    private func errorPage(
        _ error: GatewayError,
        _ request: LocalRequest,
        title: String? = nil,
        headers: [GatewayError.HeaderField] = [],
        nav: BrowserSessions.Active? = nil
    ) -> LocalResponse {
        var context = self.context(title: title ?? PageResponses.title(for: error.status), nav: nav)
        context["message"] = error.description
        context["code"] = error.code
        context["request_id"] = request.requestID
        return self.page("error", context, status: error.status, headers: error.headers + headers)
    }

    private static func asset(_ text: String, type: String) -> LocalResponse {
        LocalResponse(
            status: 200,
            contentType: type,
            body: Array(text.utf8),
            headers: [.init("Cache-Control", "public, max-age=86400"), .init("X-Content-Type-Options", "nosniff")]
        )
    }

    /// A failure as a page: refusals keep their status; a store that cannot be asked is 503.
    private func failure(_ error: any Error, _ request: LocalRequest) -> LocalResponse {
        switch error {
        case let error as GatewayError:
            return self.errorPage(error, request)
        case APIKeyService.RequestError.invalid(let message):
            return self.errorPage(GatewayError.badRequest("The key was not created: \(message)."), request)
        case APIKeyService.RequestError.scopeNotHeld(let scope):
            return self.errorPage(
                GatewayError(
                    status: 403,
                    code: "insufficient_scope",
                    description: "You cannot grant the \(scope) scope because you do not hold it."
                ),
                request
            )
        case CredentialStoreError.limitReached:
            return self.errorPage(
                GatewayError(
                    status: 409,
                    code: "key_limit_reached",
                    description: "You already hold the most API keys allowed; revoke one before creating another."
                ),
                request
            )
        case CredentialStoreError.unavailable:
            return self.errorPage(GatewayError.authUnavailable, request)
        default:
            self.deps.logger.error(
                "settings page failed",
                metadata: ["reason": "\(error)", "request_id": .string(request.requestID)]
            )
            return self.errorPage(GatewayError.internalError, request)
        }
    }
}
