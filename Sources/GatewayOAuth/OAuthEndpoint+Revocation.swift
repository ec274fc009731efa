import GatewayAuth
import GatewayCore
import GatewayCrypto
import GatewayStore
import NIOCore

/// `POST /oauth/revoke` (RFC 7009) and `POST /oauth/introspect` (RFC 7662).
extension OAuthEndpoint {
    /// Which kind of token a string is, by its shape (the hint is only a hint, RFC 7009 §2.1).
    enum TokenKind {
        case refresh(hash: String)
        case opaque(hash: String)
        case jwt
        case unknown
    }

    static func kind(of token: String) -> TokenKind {
        guard token.utf8.count <= 8192 else { return .unknown }
        if RefreshRotator.isPlausible(token) { return .refresh(hash: RefreshRotator.hash(token)) }
        if token.hasPrefix(opaqueTokenPrefix), token.utf8.count <= 128 {
            return .opaque(hash: Hex.encode(Digest.sha256.hash(Array(token.utf8))))
        }
        if token.utf8.filter({ $0 == UInt8(ascii: ".") }).count == 2 { return .jwt }
        return .unknown
    }

    /// Revokes a token of the calling client: a refresh token's whole grant (family and the
    /// remembered consent), an access token by its `jti` (every instance learns it through
    /// the events channel) or its opaque record. Unknown tokens and tokens of other clients
    /// get the same 200 (RFC 7009 §2.2): the answer says nothing about other clients' tokens.
    func revoke(
        _ request: LocalRequest,
        form: FormParameters,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<LocalResponse> {
        guard let token = form["token"] else {
            return eventLoop.makeFailedFuture(OAuthError.invalidRequest("token is required."))
        }
        let now = self.deps.clock.unixSeconds()
        return self.authenticate(request, form: form, eventLoop: eventLoop).flatMap { client -> EventLoopFuture<Void> in
            switch Self.kind(of: token) {
            case .refresh(let hash):
                return self.deps.sessions.refreshGrant(tokenHash: hash, now: now).flatMap {
                    state -> EventLoopFuture<Void> in
                    guard let state, state.grant.clientID == client.id else {
                        return eventLoop.makeSucceededVoidFuture()
                    }
                    return self.deps.sessions.revokeRefreshFamily(tokenHash: hash, now: now).flatMap { _ in
                        self.revokeGrantAccessTokens(family: state.grant.family, now: now, eventLoop: eventLoop)
                    }.flatMap {
                        self.deps.store.revokeConsent(userID: state.grant.subject, clientID: client.id)
                    }
                }
            case .opaque(let hash):
                guard let store = self.deps.opaqueTokens else { return eventLoop.makeSucceededVoidFuture() }
                return store.opaqueAccessToken(hash: hash).hop(to: eventLoop).flatMap {
                    record -> EventLoopFuture<Void> in
                    guard let record, record.clientID == client.id else { return eventLoop.makeSucceededVoidFuture() }
                    return store.revokeOpaqueAccessToken(hash: hash).hop(to: eventLoop).map { _ in () }
                }
            case .jwt:
                guard let verified = self.deps.verifyOwnToken(token), verified.principal.clientID == client.id,
                    let id = verified.tokenID
                else {
                    return eventLoop.makeSucceededVoidFuture()
                }
                // Stored (and published) first: a store failure answers 503 and nothing
                // pretends the token is dead.
                return self.deps.sessions.revokeTokenID(id, expiresAt: verified.expiresAt, now: now).map {
                    self.deps.revokeLocally(id, verified.expiresAt)
                }
            case .unknown:
                return eventLoop.makeSucceededVoidFuture()
            }
        }.map {
            LocalResponse(
                status: 200,
                body: "{}",
                headers: [.init("Cache-Control", "no-store"), .init("Pragma", "no-cache")]
            )
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    /// Tells an authenticated confidential client whether a token is active and what it
    /// grants. A client learns about its own tokens; a client registered with
    /// `resource_server` also about access tokens issued to any client (RFC 7662 §4: the
    /// answer would otherwise hand any client's holder another client's subject and
    /// scopes). Refresh tokens are described only to their own client; anything unknown,
    /// expired, revoked or not the caller's to see is `{"active":false}`.
    func introspect(
        _ request: LocalRequest,
        form: FormParameters,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<LocalResponse> {
        guard let token = form["token"] else {
            return eventLoop.makeFailedFuture(OAuthError.invalidRequest("token is required."))
        }
        let now = self.deps.clock.unixSeconds()
        let inactive = "{\"active\":false}"
        let issuer = self.deps.issuer.issuer
        return self.authenticate(request, form: form, eventLoop: eventLoop).flatMap {
            client -> EventLoopFuture<String> in
            guard !client.isPublic else {
                return eventLoop.makeFailedFuture(
                    OAuthError.invalidClient("Introspection needs an authenticated (confidential) client.")
                )
            }
            switch Self.kind(of: token) {
            case .refresh(let hash):
                return self.deps.sessions.refreshGrant(tokenHash: hash, now: now).map { state in
                    guard let state, state.isLive, let owner = state.grant.clientID, owner == client.id else {
                        return inactive
                    }
                    return Self.active(
                        scopes: state.grant.scopes,
                        clientID: owner,
                        subject: state.grant.subject,
                        expiresAt: state.grant.expiresAt,
                        issuedAt: nil,
                        tokenID: nil,
                        issuer: issuer,
                        tokenType: "refresh_token"
                    )
                }
            case .opaque(let hash):
                guard let store = self.deps.opaqueTokens else { return eventLoop.makeSucceededFuture(inactive) }
                return store.opaqueAccessToken(hash: hash).hop(to: eventLoop).map { record in
                    guard let record, record.isUsable(at: now), client.isResourceServer || record.clientID == client.id
                    else {
                        return inactive
                    }
                    return Self.active(
                        scopes: record.scopes,
                        clientID: record.clientID,
                        subject: record.subject,
                        expiresAt: record.expiresAt,
                        issuedAt: record.issuedAt,
                        tokenID: record.tokenID,
                        issuer: issuer,
                        tokenType: "Bearer"
                    )
                }
            case .jwt:
                guard let verified = self.deps.verifyOwnToken(token),
                    client.isResourceServer || verified.principal.clientID == client.id
                else { return eventLoop.makeSucceededFuture(inactive) }
                guard let id = verified.tokenID else { return eventLoop.makeSucceededFuture(inactive) }
                // Revoked by id, by its session (`sid`) or with its user (`users disable`).
                return self.deps.sessions.accessTokenDenial(
                    tokenID: id,
                    sessionID: verified.sessionID,
                    userID: verified.principal.subject
                ).map { denial in
                    let userRevoked = denial.userRevokedUpTo.map { verified.issuedAt ?? .min <= $0 } ?? false
                    guard !denial.tokenIDRevoked, !denial.sessionRevoked, !userRevoked else { return inactive }
                    return Self.active(
                        scopes: verified.principal.scopes,
                        clientID: verified.principal.clientID,
                        subject: verified.principal.subject,
                        expiresAt: verified.expiresAt,
                        issuedAt: nil,
                        tokenID: id,
                        issuer: issuer,
                        tokenType: "Bearer",
                        audience: self.deps.issuer.audience
                    )
                }
            case .unknown:
                return eventLoop.makeSucceededFuture(inactive)
            }
        }.map { body in
            LocalResponse(
                status: 200,
                body: body,
                headers: [.init("Cache-Control", "no-store"), .init("Pragma", "no-cache")]
            )
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    static func active(
        scopes: [String],
        clientID: String?,
        subject: String,
        expiresAt: Int64,
        issuedAt: Int64?,
        tokenID: String?,
        issuer: String,
        tokenType: String,
        audience: String? = nil
    ) -> String {
        var json = "{\"active\":true,\"scope\":" + JSONText.quoted(scopes.joined(separator: " "))
        if let clientID { json += ",\"client_id\":" + JSONText.quoted(clientID) }
        json += ",\"sub\":" + JSONText.quoted(subject) + ",\"exp\":\(expiresAt)"
        if let issuedAt { json += ",\"iat\":\(issuedAt)" }
        if let tokenID { json += ",\"jti\":" + JSONText.quoted(tokenID) }
        if let audience { json += ",\"aud\":" + JSONText.quoted(audience) }
        json += ",\"iss\":" + JSONText.quoted(issuer) + ",\"token_type\":" + JSONText.quoted(tokenType) + "}"
        return json
    }
}
