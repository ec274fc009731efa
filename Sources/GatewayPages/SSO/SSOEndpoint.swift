import Foundation
package import GatewayAuth
package import GatewayConfig
package import GatewayCore
package import GatewayStore
package import Logging
package import NIOCore

/// The gateway as an OpenID Connect relying party: `GET /sso/start` sends the browser to a
/// provider (authorization code flow, PKCE S256, `state` and `nonce` stored for this
/// browser's sign-in), and `GET /sso/callback` (the redirect URI registered at the
/// provider) spends the `state` once, redeems the code at the provider's token endpoint
/// (`client_secret_basic`), verifies the ID token with the provider's keys, maps its claims
/// to a just-in-time user keyed by provider and `sub`, and signs the browser in: back to
/// the OAuth authorization flow or the settings page it came from. Every answer is HTML;
/// every refusal is a page saying what to do. Outbound calls are non-blocking, bounded by
/// the provider's `timeout` and by size. One instance per event loop, rebuilt on reload;
/// touched only on its loop.
package final class SSOEndpoint: LocalEndpoint {
    package static let startPath = "/sso/start"
    package static let callbackPath = "/sso/callback"

    /// What the endpoint needs from the rest of the gateway; built by the server per loop.
    package struct Dependencies {
        package var settings: SSOSettings
        /// `[auth.jwt] issuer` + `/sso/callback`: the redirect URI registered at providers.
        package var redirectURI: String
        /// The settings pages' paths when they are served (a sign-in may return there).
        package var settingsPaths: SettingsPaths?
        package var sessionPolicy: BrowserSessionPolicy
        package var browserState: any BrowserStateStore
        package var users: any SessionStore
        package var credentials: CredentialCheck
        package var keyRing: SSOKeyRing
        package var fetcher: HTTPFetcher
        package var poster: HTTPPoster
        /// Asks the JWKS refresher for the provider's keys again (an ID token named an
        /// unknown `kid`); nil when it may not (rate cap) or there is none.
        package var refetchKeys: (String, any EventLoop) -> EventLoopFuture<Void>?
        package var logger: Logger
        package var clock: GatewayClock

        package init(
            settings: SSOSettings,
            redirectURI: String,
            settingsPaths: SettingsPaths?,
            sessionPolicy: BrowserSessionPolicy,
            browserState: any BrowserStateStore,
            users: any SessionStore,
            credentials: CredentialCheck,
            keyRing: SSOKeyRing,
            fetcher: @escaping HTTPFetcher,
            poster: @escaping HTTPPoster,
            refetchKeys: @escaping (String, any EventLoop) -> EventLoopFuture<Void>?,
            logger: Logger,
            clock: GatewayClock
        ) {
            self.settings = settings
            self.redirectURI = redirectURI
            self.settingsPaths = settingsPaths
            self.sessionPolicy = sessionPolicy
            self.browserState = browserState
            self.users = users
            self.credentials = credentials
            self.keyRing = keyRing
            self.fetcher = fetcher
            self.poster = poster
            self.refetchKeys = refetchKeys
            self.logger = logger
            self.clock = clock
        }
    }

    /// Largest token endpoint answer read.
    static let maximumTokenResponseBytes = 64 * 1024

    private let deps: Dependencies
    private let sessions: BrowserSessions

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
        normalizedPath == Self.startPath || normalizedPath == Self.callbackPath
    }

    package var routeLabel: String { "builtin sso" }
    package var maximumBodyBytes: Int64 { 0 }

    package func errorResponse(_ error: GatewayError, request: LocalRequest) -> LocalResponse {
        PageResponses.error(error, requestID: request.requestID)
    }

    package func handle(_ request: LocalRequest, eventLoop: any EventLoop) -> EventLoopFuture<LocalResponse> {
        guard request.method == "GET" || request.method == "HEAD" else {
            return eventLoop.makeSucceededFuture(
                PageResponses.error(
                    GatewayError(
                        status: 405,
                        code: "method_not_allowed",
                        description: "Use GET on \(request.normalizedPath).",
                        headers: [.init("Allow", "GET")]
                    ),
                    requestID: request.requestID
                )
            )
        }
        let response =
            request.normalizedPath == Self.startPath
            ? self.start(request, eventLoop: eventLoop) : self.callback(request, eventLoop: eventLoop)
        return response.assumeIsolated().flatMapErrorThrowing { error in self.failure(error, request) }.nonisolated()
    }

    // MARK: errors a user can act on

    private static let stateInvalid = GatewayError(
        status: 400,
        code: "sso_state_invalid",
        description:
            "This sign-in has expired or was already used. Go back to the sign-in page and choose your provider again."
    )

    private static func unavailable(_ provider: SSOProviderSettings) -> GatewayError {
        GatewayError(
            status: 502,
            code: "sso_provider_unavailable",
            description:
                "\(provider.displayName) cannot be reached right now, so you cannot sign in with it. Try again in a minute, or sign in another way."
        )
    }

    private static func tokenInvalid(_ provider: SSOProviderSettings) -> GatewayError {
        GatewayError(
            status: 502,
            code: "sso_token_invalid",
            description:
                "The answer of \(provider.displayName) could not be verified, so you are not signed in. Try again; if it keeps happening, give your administrator the request id below."
        )
    }

    static func refusal(_ refusal: SSOClaimMapping.Refusal, provider: SSOProviderSettings) -> GatewayError {
        switch refusal {
        case .missingEmail:
            GatewayError(
                status: 403,
                code: "sso_email_missing",
                description:
                    "\(provider.displayName) did not share your e-mail address. Allow it to, then sign in again."
            )
        case .emailNotVerified:
            GatewayError(
                status: 403,
                code: "sso_email_unverified",
                description:
                    "\(provider.displayName) has not verified your e-mail address. Verify it there, then sign in again."
            )
        case .domainNotAllowed(let domain):
            GatewayError(
                status: 403,
                code: "sso_domain_not_allowed",
                description:
                    "Addresses at \(domain.prefix(100)) may not sign in to this gateway. Sign in with your organisation's account."
            )
        case .noScopes:
            GatewayError(
                status: 403,
                code: "sso_no_scopes",
                description:
                    "Your account at \(provider.displayName) grants no access to this gateway. Ask your administrator to add you to a group that does."
            )
        }
    }

    // MARK: GET /sso/start?provider=NAME&(flow=ID|next=PATH)

    private func start(_ request: LocalRequest, eventLoop: any EventLoop) -> EventLoopFuture<LocalResponse> {
        guard case .success(let fields) = FormFields.parse(request.query.utf8, maximumBytes: 1024),
            fields.duplicates.isEmpty,
            let name = fields["provider"], let provider = self.deps.settings.provider(named: name)
        else {
            return eventLoop.makeFailedFuture(
                GatewayError(
                    status: 404,
                    code: "sso_unknown_provider",
                    description: "This gateway has no such sign-in provider. Go back and choose one from the list."
                )
            )
        }
        let flow = fields["flow"].flatMap { AuthorizeFlow.isValidID($0) ? $0 : nil }
        let next = flow == nil ? self.deps.settingsPaths.map { $0.afterLogin(fields["next"]) } : nil
        guard flow != nil || next != nil else {
            return eventLoop.makeFailedFuture(
                GatewayError(
                    status: 400,
                    code: "invalid_request",
                    description: "Start signing in from the application or the settings pages."
                )
            )
        }
        var headers: [GatewayError.HeaderField] = []
        let browserCookie = BrowserCookies.browserName(isTLS: request.isTLS)
        let browser: String
        if let existing = BrowserCookies.value(named: browserCookie, in: request.values(of: "Cookie")) {
            browser = existing
        } else {
            browser = PageRandom.token()
            headers.append(
                BrowserCookies.set(name: browserCookie, value: browser, maxAge: 30 * 86400, isTLS: request.isTLS)
            )
        }
        let state = PageRandom.token()
        let verifier = PageRandom.token()
        let record = SSOLoginState(
            provider: provider.name,
            nonce: PageRandom.token(),
            codeVerifier: verifier,
            browserHash: PageRandom.hash(browser),
            flow: flow,
            next: next,
            createdAt: self.deps.clock.unixSeconds()
        )
        guard let json = record.json() else { return eventLoop.makeFailedFuture(GatewayError.internalError) }
        let redirectURI = self.deps.redirectURI
        return self.deps.credentials.admit(
            address: request.clientAddress,
            account: nil,
            purpose: .authorize,
            eventLoop: eventLoop
        )
        .assumeIsolated().flatMap {
            self.discovery(provider, eventLoop: eventLoop)
        }.flatMap { discovery in
            self.deps.browserState.storeFlow(
                id: SSOLoginState.storeID(state: state),
                json: json,
                ttl: SSOLoginState.lifetimeSeconds
            ).map {
                discovery
            }
        }.map { discovery -> LocalResponse in
            let parameters = [
                ("response_type", "code"), ("client_id", provider.clientID), ("redirect_uri", redirectURI),
                ("scope", provider.scopes.joined(separator: " ")), ("state", state), ("nonce", record.nonce),
                ("code_challenge", SSOLoginState.challenge(verifier: verifier)), ("code_challenge_method", "S256"),
            ]
            let query = parameters.map { "\($0.0)=\(FormFields.encode($0.1))" }.joined(separator: "&")
            let separator = discovery.authorizationEndpoint.contains("?") ? "&" : "?"
            self.deps.logger.info(
                "sso sign-in started",
                metadata: ["event": "sso_start", "provider": .string(provider.name)]
            )
            return PageResponses.seeOther(discovery.authorizationEndpoint + separator + query, headers: headers)
        }.nonisolated()
    }

    /// The provider's discovery document, from this loop's cache or fetched (bounded).
    private func discovery(_ provider: SSOProviderSettings, eventLoop: any EventLoop) -> EventLoopFuture<SSODiscovery> {
        let now = self.deps.clock.unixSeconds()
        if let cached = self.deps.keyRing.discovery(issuer: provider.issuer, now: now) {
            return eventLoop.makeSucceededFuture(cached)
        }
        let ring = self.deps.keyRing
        let logger = self.deps.logger
        return self.deps.fetcher(
            provider.discoveryURL,
            provider.timeout.timeAmount,
            SSODiscovery.maximumDocumentBytes,
            provider.caFile
        )
        .hop(to: eventLoop).assumeIsolated()
        .flatMapThrowing { response -> SSODiscovery in
            guard response.status == 200 else {
                throw SSODiscovery.Problem(description: "discovery answered HTTP \(response.status)")
            }
            let document = try SSODiscovery.parse(response.body, provider: provider).get()
            ring.remember(issuer: provider.issuer, discovery: document, now: now)
            return document
        }.flatMapErrorThrowing { error -> SSODiscovery in
            if error is GatewayError { throw error }
            logger.error(
                "sso provider unreachable",
                metadata: ["provider": .string(provider.name), "error": "\(error)"]
            )
            throw Self.unavailable(provider)
        }.nonisolated()
    }

    // MARK: GET /sso/callback?code=...&state=...

    private func callback(_ request: LocalRequest, eventLoop: any EventLoop) -> EventLoopFuture<LocalResponse> {
        guard case .success(let fields) = FormFields.parse(request.query.utf8, maximumBytes: 8192),
            fields.duplicates.isEmpty,
            let state = fields["state"], !state.isEmpty, state.utf8.count <= 128
        else {
            return eventLoop.makeFailedFuture(Self.stateInvalid)
        }
        let id = SSOLoginState.storeID(state: state)
        let store = self.deps.browserState
        let browser = BrowserCookies.value(
            named: BrowserCookies.browserName(isTLS: request.isTLS),
            in: request.values(of: "Cookie")
        )
        let now = self.deps.clock.unixSeconds()
        return store.flow(id: id).assumeIsolated().flatMap { json -> EventLoopFuture<SSOLoginState> in
            guard let json, let record = SSOLoginState.decode(json) else {
                return eventLoop.makeFailedFuture(Self.stateInvalid)
            }
            // Checked before it is spent: another browser presenting a state it saw must not
            // cancel the owner's sign-in. Then spent by whoever deletes it first: a state (and
            // its code) works once.
            if let problem = record.check(browser: browser, now: now) {
                self.deps.logger.info(
                    "sso state refused",
                    metadata: ["event": "sso_state_refused", "reason": "\(problem)"]
                )
                return eventLoop.makeFailedFuture(Self.stateInvalid)
            }
            return store.deleteFlow(id: id).flatMapThrowing { existed in
                guard existed else { throw Self.stateInvalid }
                return record
            }
        }.flatMap { record -> EventLoopFuture<LocalResponse> in
            guard let provider = self.deps.settings.provider(named: record.provider) else {
                return eventLoop.makeFailedFuture(Self.stateInvalid)
            }
            if let error = fields["error"] {
                let code = String(
                    error.unicodeScalars.filter { $0.isASCII && ($0.properties.isAlphabetic || $0 == "_") }.prefix(64)
                        .map(Character.init)
                )
                return eventLoop.makeFailedFuture(
                    GatewayError(
                        status: 403,
                        code: "sso_denied",
                        description:
                            "\(provider.displayName) did not sign you in (\(code)). Go back to the sign-in page to try again."
                    )
                )
            }
            // RFC 9207: when the provider names itself, it must be the one we sent the browser to.
            if let iss = fields["iss"], !iss.utf8.elementsEqual(provider.issuer.utf8) {
                return eventLoop.makeFailedFuture(Self.tokenInvalid(provider))
            }
            guard let code = fields["code"], !code.isEmpty, code.utf8.count <= 2048 else {
                return eventLoop.makeFailedFuture(Self.stateInvalid)
            }
            let issuerNamed = fields["iss"] != nil
            return self.discovery(provider, eventLoop: eventLoop).assumeIsolated().flatMapThrowing { discovery in
                // RFC 9207 §2.4: a provider that names itself in its responses must have done so.
                if discovery.sendsIssuerInResponses, !issuerNamed { throw Self.tokenInvalid(provider) }
            }.flatMap {
                self.redeem(code: code, record: record, provider: provider, eventLoop: eventLoop)
            }
            .flatMap { claims in
                self.signIn(claims: claims, provider: provider, record: record, request: request, eventLoop: eventLoop)
            }
            .nonisolated()
        }.nonisolated()
    }

    /// Code → ID token at the token endpoint, then the verified claims.
    private func redeem(
        code: String,
        record: SSOLoginState,
        provider: SSOProviderSettings,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<JSONObject> {
        let poster = self.deps.poster
        let redirectURI = self.deps.redirectURI
        let logger = self.deps.logger
        return self.discovery(provider, eventLoop: eventLoop).assumeIsolated().flatMap {
            discovery -> EventLoopFuture<HTTPFetchResponse> in
            let body = [
                ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI),
                ("code_verifier", record.codeVerifier),
            ].map { "\($0.0)=\(FormFields.encode($0.1))" }.joined(separator: "&")
            // RFC 6749 §2.3.1: both parts form-encoded before base64.
            let basic = Data(
                (FormFields.encode(provider.clientID) + ":" + FormFields.encode(provider.clientSecret.value)).utf8
            ).base64EncodedString()
            let post = HTTPPostRequest(
                url: discovery.tokenEndpoint,
                headers: [("Authorization", "Basic " + basic)],
                body: Array(body.utf8),
                timeout: provider.timeout.timeAmount,
                maximumBytes: Self.maximumTokenResponseBytes,
                caFile: provider.caFile
            )
            return poster(post, eventLoop).hop(to: eventLoop).flatMapErrorThrowing { error in
                logger.error(
                    "sso token endpoint unreachable",
                    metadata: ["provider": .string(provider.name), "error": "\(error)"]
                )
                throw Self.unavailable(provider)
            }
        }.flatMapThrowing { response -> String in
            guard response.status == 200 else {
                logger.error(
                    "sso token endpoint refused the code",
                    metadata: ["provider": .string(provider.name), "status": "\(response.status)"]
                )
                throw Self.tokenInvalid(provider)
            }
            guard let document = try? StrictJSON.parseObject(response.body), let idToken = document["id_token"]?.string
            else {
                logger.error(
                    "sso token endpoint answer has no id_token",
                    metadata: ["provider": .string(provider.name)]
                )
                throw Self.tokenInvalid(provider)
            }
            return idToken
        }.flatMap { idToken in
            self.verify(idToken, record: record, provider: provider, eventLoop: eventLoop, mayRefetch: true)
        }.nonisolated()
    }

    private func verify(
        _ idToken: String,
        record: SSOLoginState,
        provider: SSOProviderSettings,
        eventLoop: any EventLoop,
        mayRefetch: Bool
    ) -> EventLoopFuture<JSONObject> {
        let keys = self.deps.keyRing.keys(issuer: provider.issuer)
        switch SSOIDTokenCheck.verify(
            idToken,
            keys: keys,
            provider: provider,
            nonce: record.nonce,
            now: self.deps.clock.unixSeconds()
        ) {
        case .success(let claims):
            return eventLoop.makeSucceededFuture(claims)
        case .failure(.unknownKey) where mayRefetch:
            guard let refetch = self.deps.refetchKeys(provider.issuer, eventLoop) else {
                return self.verify(idToken, record: record, provider: provider, eventLoop: eventLoop, mayRefetch: false)
            }
            // Installed on every loop (this one included) before the refetch completes.
            return refetch.hop(to: eventLoop).assumeIsolated().flatMapError { _ in eventLoop.makeSucceededVoidFuture() }
                .flatMap {
                    self.verify(idToken, record: record, provider: provider, eventLoop: eventLoop, mayRefetch: false)
                }.nonisolated()
        case .failure(let failure):
            self.deps.logger.warning(
                "sso ID token refused",
                metadata: ["event": "sso_token_refused", "provider": .string(provider.name), "reason": "\(failure)"]
            )
            return eventLoop.makeFailedFuture(Self.tokenInvalid(provider))
        }
    }

    /// The just-in-time user (created, or its scopes and address refreshed), then a browser
    /// session and the way back.
    private func signIn(
        claims: JSONObject,
        provider: SSOProviderSettings,
        record: SSOLoginState,
        request: LocalRequest,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<LocalResponse> {
        let mapped: SSOClaimMapping.Mapped
        switch SSOClaimMapping.map(claims: claims, provider: provider) {
        case .failure(let refusal):
            self.deps.logger.info(
                "sso sign-in refused",
                metadata: ["event": "sso_refused", "provider": .string(provider.name), "reason": "\(refusal)"]
            )
            return eventLoop.makeFailedFuture(Self.refusal(refusal, provider: provider))
        case .success(let value): mapped = value
        }
        let key = SSOUserKey.key(provider: provider.name, subject: mapped.subject)
        let now = self.deps.clock.unixSeconds()
        let disabled = GatewayError(
            status: 403,
            code: "account_disabled",
            description: "Your account on this gateway is disabled. Ask your administrator to enable it."
        )
        return self.upsert(
            key: key,
            mapped: mapped,
            provider: provider,
            now: now,
            disabled: disabled,
            retry: true,
            eventLoop: eventLoop
        )
        .assumeIsolated().flatMap { user -> EventLoopFuture<LocalResponse> in
            let logger = self.deps.logger
            return self.sessions.create(for: user, request: request, eventLoop: eventLoop).map { cookie in
                logger.info(
                    "sso sign-in",
                    metadata: ["event": "sso_login", "provider": .string(provider.name), "subject": .string(user.id)]
                )
                let location = record.flow.map { "/oauth/authorize/consent?flow=" + $0 } ?? record.next ?? "/"
                return PageResponses.seeOther(location, headers: [cookie])
            }
        }.nonisolated()
    }

    /// Creates the user, or refreshes its scopes and address; a first sign-in racing another
    /// of the same user (both creating) becomes an update once.
    private func upsert(
        key: String,
        mapped: SSOClaimMapping.Mapped,
        provider: SSOProviderSettings,
        now: Int64,
        disabled: GatewayError,
        retry: Bool,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<UserRecord> {
        let users = self.deps.users
        return users.user(email: key).assumeIsolated().flatMap { existing -> EventLoopFuture<UserRecord> in
            if let existing {
                // Only a user this provider created: never a password user (or another
                // provider's) that happens to hold the login name.
                guard existing.provider == provider.name, existing.passwordHash.isEmpty else {
                    return eventLoop.makeFailedFuture(
                        GatewayError(
                            status: 403,
                            code: "account_conflict",
                            description:
                                "This sign-in matches an account that was not created through \(provider.displayName). Ask an administrator."
                        )
                    )
                }
                var updated = existing
                updated.scopes = mapped.scopes
                updated.contactEmail = mapped.email
                updated.provider = provider.name
                return users.updateProviderUser(updated).flatMapThrowing { stored in
                    guard let stored, !stored.disabled, stored.id == existing.id else { throw disabled }
                    return stored
                }
            }
            var user = UserRecord(
                id: "usr_" + PageRandom.token().prefix(16),
                email: key,
                scopes: mapped.scopes,
                passwordHash: "",
                createdAt: now
            )
            user.provider = provider.name
            user.contactEmail = mapped.email
            let created = user
            return users.createUser(created).assumeIsolated().map { created }.flatMapError { error in
                guard retry, case CredentialStoreError.conflict = error else {
                    return eventLoop.makeFailedFuture(error)
                }
                return self.upsert(
                    key: key,
                    mapped: mapped,
                    provider: provider,
                    now: now,
                    disabled: disabled,
                    retry: false,
                    eventLoop: eventLoop
                )
            }.nonisolated()
        }.nonisolated()
    }

    private func failure(_ error: any Error, _ request: LocalRequest) -> LocalResponse {
        switch error {
        case let error as GatewayError:
            return PageResponses.error(
                error,
                requestID: request.requestID,
                title: error.code.hasPrefix("sso_") ? "Cannot sign you in" : nil
            )
        case CredentialStoreError.unavailable:
            return PageResponses.error(GatewayError.authUnavailable, requestID: request.requestID)
        default:
            self.deps.logger.error(
                "sso page failed",
                metadata: ["reason": "\(error)", "request_id": .string(request.requestID)]
            )
            return PageResponses.error(GatewayError.internalError, requestID: request.requestID)
        }
    }
}
