import GatewayAuth
import GatewayConfig
import GatewayCore
import GatewayCrypto
import GatewayStore
import Logging
import NIOCore

/// `POST /oauth/token`: the three grants.
extension OAuthEndpoint {
    /// What one issuance produced: the answer, and what a reused code must revoke.
    struct Issued {
        var body: String
        var issuance: CodeIssuance
    }

    /// An access token of either format.
    struct AccessToken {
        var token: String
        var expiresAt: Int64
        var tokenID: String?
        var opaqueHash: String?
    }

    func token(
        _ request: LocalRequest,
        form: FormParameters,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<LocalResponse> {
        guard let grantType = form["grant_type"] else {
            return eventLoop.makeFailedFuture(OAuthError.invalidRequest("grant_type is required."))
        }
        guard let grant = OAuthGrantType(rawValue: grantType) else {
            return eventLoop.makeFailedFuture(
                OAuthError.unsupportedGrantType(
                    "Supported grant types: authorization_code, refresh_token, client_credentials."
                )
            )
        }
        return self.authenticate(request, form: form, eventLoop: eventLoop).flatMap {
            client -> EventLoopFuture<String> in
            switch grant {
            case .authorizationCode: return self.authorizationCode(form, client: client, eventLoop: eventLoop)
            case .clientCredentials: return self.clientCredentials(form, client: client, eventLoop: eventLoop)
            case .refreshToken: return self.refresh(form, client: client, eventLoop: eventLoop)
            }
        }.map { body in
            LocalResponse(
                status: 200,
                body: body,
                headers: [.init("Cache-Control", "no-store"), .init("Pragma", "no-cache")]
            )
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    // MARK: authorization_code

    private func authorizationCode(
        _ form: FormParameters,
        client: OAuthClient,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<String> {
        guard client.allows(.authorizationCode) else {
            return eventLoop.makeFailedFuture(
                OAuthError.unauthorizedClient("This client may not use the authorization_code grant.")
            )
        }
        guard let code = form["code"] else {
            return eventLoop.makeFailedFuture(OAuthError.invalidRequest("code is required."))
        }
        guard let redirectURI = form["redirect_uri"] else {
            return eventLoop.makeFailedFuture(
                OAuthError.invalidRequest("redirect_uri is required (the one of the authorization request).")
            )
        }
        guard code.utf8.count <= 256 else {
            return eventLoop.makeFailedFuture(
                OAuthError.invalidGrant("The authorization code is invalid, expired or already used.")
            )
        }
        let verifier = form["code_verifier"]
        let codeHash = Hex.encode(Digest.sha256.hash(Array(code.utf8)))
        let now = self.deps.clock.unixSeconds()
        return self.deps.store.redeemCode(codeHash: codeHash, now: now).flatMap {
            redemption -> EventLoopFuture<String> in
            switch redemption {
            case .invalid:
                return eventLoop.makeFailedFuture(
                    OAuthError.invalidGrant("The authorization code is invalid, expired or already used.")
                )
            case .reused(let record, let issued):
                self.deps.logger.warning(
                    "authorization code presented again; tokens issued from it are revoked",
                    metadata: ["event": "oauth_code_reuse", "client_id": .string(record.clientID)]
                )
                return self.revokeIssued(issued, now: now, eventLoop: eventLoop).flatMap {
                    self.deps.store.revokeConsent(userID: record.userID, clientID: record.clientID)
                }.flatMapThrowing {
                    throw OAuthError.invalidGrant(
                        "The authorization code was already used; the tokens issued from it are revoked."
                    )
                }
            case .redeemed(let record):
                // The code is spent from here on, whatever follows (a failed PKCE check burns it).
                if let problem = Self.problem(
                    with: record,
                    client: client,
                    redirectURI: redirectURI,
                    verifier: verifier
                ) {
                    return eventLoop.makeFailedFuture(OAuthError.invalidGrant(problem))
                }
                return self.issueForCode(record, codeHash: codeHash, client: client, now: now, eventLoop: eventLoop)
            }
        }
    }

    /// Of `scopes`, those the user and the client both hold today (a user with `admin` holds
    /// every scope, as on the consent page and the request path).
    static func stillGranted(_ scopes: [String], user: UserRecord, client: OAuthClient) -> [String] {
        scopes.filter { (user.scopes.contains("admin") || user.scopes.contains($0)) && client.scopes.contains($0) }
    }

    /// Why the redeemed `record` cannot be exchanged by this request, or nil.
    static func problem(
        with record: AuthorizationCodeRecord,
        client: OAuthClient,
        redirectURI: String,
        verifier: String?
    ) -> String? {
        guard record.clientID == client.id else { return "The authorization code was issued to another client." }
        guard record.redirectURI == redirectURI else {
            return "redirect_uri differs from the one of the authorization request."
        }
        if let challenge = record.codeChallenge {
            guard let verifier else {
                return "code_verifier is required: the authorization request had a code_challenge."
            }
            guard PKCE.isValidVerifier(verifier) else {
                return "code_verifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~."
            }
            guard PKCE.verify(verifier: verifier, challenge: challenge) else {
                return "code_verifier does not match the code_challenge."
            }
        } else {
            guard verifier == nil else { return "code_verifier was sent for a code issued without code_challenge." }
            guard !client.isPublic else { return "A public client must use PKCE (S256)." }
        }
        return nil
    }

    private func issueForCode(
        _ record: AuthorizationCodeRecord,
        codeHash: String,
        client: OAuthClient,
        now: Int64,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<String> {
        self.deps.sessions.user(id: record.userID).flatMap { user -> EventLoopFuture<Issued> in
            guard let user, !user.disabled else {
                return eventLoop.makeFailedFuture(
                    OAuthError.invalidGrant("The user of this authorization code can no longer sign in.")
                )
            }
            // Never more than the user and the client hold today.
            let scopes = Self.stillGranted(record.scopes, user: user, client: client)
            return self.issue(
                client: client,
                subject: user.id,
                email: user.email,
                scopes: scopes,
                now: now,
                eventLoop: eventLoop
            )
        }.flatMap { issued -> EventLoopFuture<String> in
            self.deps.store.recordIssued(fromCode: codeHash, issuance: issued.issuance).flatMap {
                recorded -> EventLoopFuture<String> in
                if recorded { return eventLoop.makeSucceededFuture(issued.body) }
                // The code was presented again while these tokens were made: this redemption
                // was the one that won (its answer stands, so of any number of parallel
                // redemptions exactly one succeeds), but the reuse revokes what it issued.
                self.deps.logger.warning(
                    "authorization code presented again during its redemption; the tokens issued from it are revoked",
                    metadata: ["event": "oauth_code_reuse", "client_id": .string(client.id)]
                )
                return self.revokeIssued(issued.issuance, now: now, eventLoop: eventLoop).map { issued.body }
            }
        }
    }

    /// An access token and, when the client may refresh, a new refresh family.
    private func issue(
        client: OAuthClient,
        subject: String,
        email: String,
        scopes: [String],
        now: Int64,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<Issued> {
        self.accessToken(client: client, subject: subject, scopes: scopes, now: now, eventLoop: eventLoop).flatMap {
            access -> EventLoopFuture<Issued> in
            var issuance = CodeIssuance(
                accessTokenID: access.tokenID,
                accessTokenExpiresAt: access.expiresAt,
                opaqueAccessTokenHash: access.opaqueHash
            )
            guard client.allows(.refreshToken) else {
                return eventLoop.makeSucceededFuture(
                    Issued(body: Self.body(access, scopes: scopes, refreshToken: nil, now: now), issuance: issuance)
                )
            }
            let refreshToken = RefreshRotator.makeToken()
            let refreshHash = RefreshRotator.hash(refreshToken)
            let family = Base64URL.encode(SecureRandom.bytes(16))
            issuance.refreshTokenHash = refreshHash
            issuance.family = family
            let grant = RefreshGrant(
                family: family,
                userID: email,
                subject: subject,
                scopes: scopes,
                expiresAt: now + self.deps.issuer.refreshTokenTTL,
                clientID: client.id
            )
            let finished = issuance
            return self.deps.sessions.storeRefresh(tokenHash: refreshHash, grant: grant, now: now).flatMap {
                self.remember(access, family: family, now: now)
            }.map {
                Issued(
                    body: Self.body(access, scopes: scopes, refreshToken: refreshToken, now: now),
                    issuance: finished
                )
            }
        }
    }

    /// A JWT (signed on the thread pool) or an opaque token (stored hashed), per client.
    func accessToken(
        client: OAuthClient,
        subject: String,
        scopes: [String],
        now: Int64,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<AccessToken> {
        switch client.tokenFormat {
        case .jwt:
            return self.offLoop(eventLoop) { self.deps.signAccessToken(subject, scopes, client.id, now, eventLoop) }.map
            {
                AccessToken(token: $0.token, expiresAt: $0.expiresAt, tokenID: $0.tokenID, opaqueHash: nil)
            }
        case .opaque:
            guard let store = self.deps.opaqueTokens else {
                return eventLoop.makeFailedFuture(GatewayError.internalError)
            }
            let token = Self.opaqueTokenPrefix + Base64URL.encode(SecureRandom.bytes(32))
            let hash = Hex.encode(Digest.sha256.hash(Array(token.utf8)))
            let expiresAt = now + self.deps.issuer.accessTokenTTL
            let record = OpaqueAccessTokenRecord(
                clientID: client.id,
                subject: subject,
                scopes: scopes,
                tokenID: Base64URL.encode(SecureRandom.bytes(16)),
                issuedAt: now,
                expiresAt: expiresAt
            )
            return store.storeOpaqueAccessToken(hash: hash, record: record, now: now).hop(to: eventLoop).map {
                AccessToken(token: token, expiresAt: expiresAt, tokenID: nil, opaqueHash: hash)
            }
        }
    }

    /// Records `access` under its grant's refresh family, so revoking the grant revokes it.
    func remember(_ access: AccessToken, family: String, now: Int64) -> EventLoopFuture<Void> {
        let token: GrantAccessToken
        if let hash = access.opaqueHash {
            token = .opaque(hash: hash)
        } else if let id = access.tokenID {
            token = .jwt(tokenID: id, expiresAt: access.expiresAt)
        } else {
            return self.deps.store.eventLoop.makeSucceededVoidFuture()
        }
        return self.deps.store.recordGrantAccessToken(
            family: family,
            token: token,
            keepUntil: access.expiresAt + 900,
            now: now
        )
    }

    /// Revokes every access token recorded under `family` (the grant is being revoked).
    func revokeGrantAccessTokens(family: String, now: Int64, eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        self.deps.store.takeGrantAccessTokens(family: family).flatMap { tokens -> EventLoopFuture<Void> in
            let work = tokens.map { token -> EventLoopFuture<Void> in
                switch token {
                case .jwt(let id, let expiresAt):
                    return self.deps.sessions.revokeTokenID(id, expiresAt: expiresAt, now: now).map {
                        self.deps.revokeLocally(id, expiresAt)
                    }
                case .opaque(let hash):
                    guard let store = self.deps.opaqueTokens else { return eventLoop.makeSucceededVoidFuture() }
                    return store.revokeOpaqueAccessToken(hash: hash).hop(to: eventLoop).map { _ in () }
                }
            }
            return EventLoopFuture.andAllSucceed(work, on: eventLoop)
        }
    }

    static func body(_ access: AccessToken, scopes: [String], refreshToken: String?, now: Int64) -> String {
        var json = "{\"access_token\":" + JSONText.quoted(access.token) + ",\"token_type\":\"Bearer\""
        json +=
            ",\"expires_in\":\(max(0, access.expiresAt - now)),\"scope\":"
            + JSONText.quoted(scopes.joined(separator: " "))
        if let refreshToken { json += ",\"refresh_token\":" + JSONText.quoted(refreshToken) }
        return json + "}"
    }

    /// Revokes what one code issued (its reuse): the refresh family, the access token.
    func revokeIssued(_ issuance: CodeIssuance?, now: Int64, eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        guard let issuance else { return eventLoop.makeSucceededVoidFuture() }
        var work: [EventLoopFuture<Void>] = []
        if let hash = issuance.refreshTokenHash {
            work.append(self.deps.sessions.revokeRefreshFamily(tokenHash: hash, now: now).map { _ in () })
        }
        if let family = issuance.family {
            work.append(self.revokeGrantAccessTokens(family: family, now: now, eventLoop: eventLoop))
        }
        if let id = issuance.accessTokenID, let expiresAt = issuance.accessTokenExpiresAt {
            work.append(
                self.deps.sessions.revokeTokenID(id, expiresAt: expiresAt, now: now).map {
                    self.deps.revokeLocally(id, expiresAt)
                }
            )
        }
        if let hash = issuance.opaqueAccessTokenHash, let store = self.deps.opaqueTokens {
            work.append(store.revokeOpaqueAccessToken(hash: hash).hop(to: eventLoop).map { _ in () })
        }
        return EventLoopFuture.andAllSucceed(work, on: eventLoop)
    }

    // MARK: client_credentials

    private func clientCredentials(
        _ form: FormParameters,
        client: OAuthClient,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<String> {
        guard !client.isPublic, client.allows(.clientCredentials) else {
            return eventLoop.makeFailedFuture(
                OAuthError.unauthorizedClient("This client may not use the client_credentials grant.")
            )
        }
        let scopes: [String]
        do {
            scopes =
                try Self.requestedScopes(form, within: client.scopes, what: "the client's registered scopes")
                ?? client.scopes
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        let now = self.deps.clock.unixSeconds()
        // Namespaced: `client:` can never be a user id (those are generated without a colon).
        return self.accessToken(
            client: client,
            subject: "client:" + client.id,
            scopes: scopes,
            now: now,
            eventLoop: eventLoop
        ).map {
            Self.body($0, scopes: scopes, refreshToken: nil, now: now)
        }
    }

    /// The `scope` parameter as a list, nil when absent; each must be in `allowed`.
    static func requestedScopes(
        _ form: FormParameters,
        within allowed: [String],
        what: String
    ) throws(GatewayError) -> [String]? {
        guard let text = form["scope"] else { return nil }
        guard let scopes = ScopeToken.parseList(text), !scopes.isEmpty else {
            throw OAuthError.invalidScope("scope must be a space-separated list of scope tokens.")
        }
        let outside = scopes.filter { !allowed.contains($0) }
        guard outside.isEmpty else {
            throw OAuthError.invalidScope(
                "Not within \(what): \(outside.prefix(5).joined(separator: " ").prefix(200))."
            )
        }
        var seen = Set<String>()
        return scopes.filter { seen.insert($0).inserted }
    }

    // MARK: refresh_token

    private func refresh(
        _ form: FormParameters,
        client: OAuthClient,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<String> {
        guard client.allows(.refreshToken) else {
            return eventLoop.makeFailedFuture(
                OAuthError.unauthorizedClient("This client may not use the refresh_token grant.")
            )
        }
        guard let token = form["refresh_token"] else {
            return eventLoop.makeFailedFuture(OAuthError.invalidRequest("refresh_token is required."))
        }
        let invalid = OAuthError.invalidGrant("The refresh token is invalid, expired or revoked.")
        guard RefreshRotator.isPlausible(token) else { return eventLoop.makeFailedFuture(invalid) }
        let now = self.deps.clock.unixSeconds()
        // Read first (nothing spent): the client and the scope are checked before a rotation,
        // so a refused request never costs the rightful holder its token.
        return self.deps.sessions.refreshGrant(tokenHash: RefreshRotator.hash(token), now: now).flatMap {
            state -> EventLoopFuture<String> in
            guard let state, state.grant.clientID == client.id else { return eventLoop.makeFailedFuture(invalid) }
            let requested: [String]?
            do {
                requested = try Self.requestedScopes(
                    form,
                    within: state.grant.scopes,
                    what: "the scopes originally granted"
                )
            } catch {
                return eventLoop.makeFailedFuture(error)
            }
            return self.rotator.rotate(token: token, clientID: client.id, now: now, eventLoop: eventLoop) {
                grant,
                newToken in
                self.refreshed(
                    grant,
                    newToken: newToken,
                    requested: requested,
                    client: client,
                    now: now,
                    eventLoop: eventLoop
                )
            }.flatMap { outcome -> EventLoopFuture<String> in
                switch outcome {
                case .answered(let body), .replayed(let body): return eventLoop.makeSucceededFuture(body)
                case .invalid: return eventLoop.makeFailedFuture(invalid)
                case .reused:
                    self.deps.logger.warning(
                        "refresh token reused; its family is revoked",
                        metadata: ["event": "refresh_reuse", "client_id": .string(client.id)]
                    )
                    // The family is revoked: the access tokens of the grant go with it, and the
                    // remembered consent (a stolen grant must not be silently renewed).
                    return self.revokeGrantAccessTokens(family: state.grant.family, now: now, eventLoop: eventLoop)
                        .flatMap {
                            self.deps.store.revokeConsent(userID: state.grant.subject, clientID: client.id)
                        }.flatMapThrowing {
                            throw OAuthError.invalidGrant("The refresh token was already used; its grant is revoked.")
                        }
                }
            }
        }
    }

    private func refreshed(
        _ grant: RefreshGrant,
        newToken: String,
        requested: [String]?,
        client: OAuthClient,
        now: Int64,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<String> {
        self.deps.sessions.user(email: grant.userID).flatMap { user -> EventLoopFuture<String> in
            guard let user, !user.disabled, user.id == grant.subject else {
                return self.deps.sessions.revokeRefreshFamily(tokenHash: RefreshRotator.hash(newToken), now: now)
                    .flatMapThrowing { _ in
                        throw OAuthError.invalidGrant("The refresh token is invalid, expired or revoked.")
                    }
            }
            let scopes = Self.stillGranted(requested ?? grant.scopes, user: user, client: client)
            return self.accessToken(client: client, subject: user.id, scopes: scopes, now: now, eventLoop: eventLoop)
                .flatMap { access in
                    self.remember(access, family: grant.family, now: now).map {
                        Self.body(access, scopes: scopes, refreshToken: newToken, now: now)
                    }
                }
        }
    }
}
