import Foundation
package import GatewayCore
import GatewayCrypto
package import GatewayStore
package import Logging
package import NIOCore

/// Runs `PasswordHasher.verify` off the event loop; completes with whether it matched.
package typealias PasswordCheck =
    @Sendable (_ password: String, _ encoded: String, _ loop: any EventLoop) -> EventLoopFuture<Bool>

/// Hashes a password with the current cost off the event loop (the rehash of a user whose
/// stored hash was made with other scrypt parameters, after a successful login).
package typealias PasswordRehash =
    @Sendable (_ password: String, _ cost: Int, _ loop: any EventLoop) -> EventLoopFuture<String>

/// The endpoints of the gateway's own issuer: `POST /v1/auth/login`,
/// `POST /v1/auth/refresh`, `POST /v1/auth/logout` and `GET /.well-known/jwks.json`.
///
/// Passwords are checked with scrypt through `checkPassword`, which runs it on a thread
/// pool (never on the event loop), and an
/// unknown or disabled account costs the same scrypt as a wrong password, so the answer
/// and its timing say nothing about which e-mails exist. Refresh tokens are opaque, stored
/// only as their SHA-256, rotated on every use; presenting a rotated one revokes its whole
/// family. Touched only on its event loop.
package final class SessionEndpoints {
    package static let loginPath = "/v1/auth/login"
    package static let refreshPath = "/v1/auth/refresh"
    package static let logoutPath = "/v1/auth/logout"
    package static let jwksPath = "/.well-known/jwks.json"
    package static let maximumBodyBytes: Int64 = 16 * 1024
    /// Password checks queued or running per event loop before logins get 503.
    package static let maximumPendingHashes = CredentialCheck.maximumPendingHashes
    static let refreshTokenPrefix = RefreshRotator.tokenPrefix

    package struct Response: Sendable {
        package var status: Int
        package var body: String
        package var headers: [GatewayError.HeaderField] = []
    }

    private let issuer: TokenIssuer
    private let sessions: any SessionStore
    /// The e-mail + password check, shared with the browser sign-in page of this loop.
    package let credentials: CredentialCheck
    private let passwordCost: Int
    private let logger: Logger
    private let clock: GatewayClock
    private let revokeLocally: (String, Int64) -> Void
    private let revokeSessionLocally: (String, Int64) -> Void
    private let verifyOwnToken: (String) -> VerifiedToken?
    private let rotator: RefreshRotator

    /// - Parameters:
    ///   - revokeLocally: marks an access-token id revoked on this loop at once.
    ///   - revokeSessionLocally: marks a session (`sid`) ended on this loop at once.
    ///   - verifyOwnToken: checks an access token of ours (logout revokes it).
    package init(
        issuer: TokenIssuer,
        sessions: any SessionStore,
        throttle: any LoginThrottle,
        checkPassword: @escaping PasswordCheck,
        rehashPassword: PasswordRehash? = nil,
        passwordCost: Int,
        decoyHash: String,
        logger: Logger,
        clock: GatewayClock,
        revokeLocally: @escaping (String, Int64) -> Void,
        revokeSessionLocally: @escaping (String, Int64) -> Void = { _, _ in },
        verifyOwnToken: @escaping (String) -> VerifiedToken?,
        refreshReuseGraceSeconds: Int64 = 0
    ) {
        self.rotator = RefreshRotator(sessions: sessions, graceSeconds: refreshReuseGraceSeconds)
        self.issuer = issuer
        self.sessions = sessions
        self.credentials = CredentialCheck(
            sessions: sessions,
            throttle: throttle,
            checkPassword: checkPassword,
            decoyHash: decoyHash,
            rehash: rehashPassword.map { (cost: passwordCost, run: $0) }
        )
        self.passwordCost = passwordCost
        self.logger = logger
        self.clock = clock
        self.revokeLocally = revokeLocally
        self.revokeSessionLocally = revokeSessionLocally
        self.verifyOwnToken = verifyOwnToken
    }

    package static func handles(_ normalizedPath: String) -> Bool {
        normalizedPath == loginPath || normalizedPath == refreshPath || normalizedPath == logoutPath
            || normalizedPath == jwksPath
    }

    package func handle(
        method: String,
        normalizedPath: String,
        body: [UInt8],
        authorization: [String],
        clientAddress: String,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<Response> {
        switch (normalizedPath, method) {
        case (Self.jwksPath, "GET"), (Self.jwksPath, "HEAD"):
            return eventLoop.makeSucceededFuture(
                Response(
                    status: 200,
                    body: issuer.jwksDocument,
                    headers: [.init("Cache-Control", "public, max-age=300")]
                )
            )
        case (Self.loginPath, "POST"):
            return login(body: body, clientAddress: clientAddress, eventLoop: eventLoop)
        case (Self.refreshPath, "POST"):
            // A token endpoint: limited per address like login (there is no account yet).
            return throttled(address: clientAddress, account: nil, purpose: .refresh, eventLoop: eventLoop)
                .assumeIsolated().flatMap {
                    self.refresh(body: body, eventLoop: eventLoop)
                }.nonisolated()
        case (Self.logoutPath, "POST"):
            return logout(body: body, authorization: authorization, eventLoop: eventLoop)
        default:
            let allowed = normalizedPath == Self.jwksPath ? "GET" : "POST"
            return eventLoop.makeFailedFuture(
                GatewayError(
                    status: 405,
                    code: "method_not_allowed",
                    description: "Use \(allowed) on \(normalizedPath).",
                    headers: [.init("Allow", allowed)]
                )
            )
        }
    }

    // MARK: login

    private func login(body: [UInt8], clientAddress: String, eventLoop: any EventLoop) -> EventLoopFuture<Response> {
        guard let object = try? StrictJSON.parseObject(body, maxDepth: 2),
            let email = object["email"]?.string, let password = object["password"]?.string
        else {
            return eventLoop.makeFailedFuture(
                GatewayError.badRequest("The body must be JSON: {\"email\": ..., \"password\": ...}.")
            )
        }
        return self.credentials.verify(
            email: email,
            password: password,
            clientAddress: clientAddress,
            eventLoop: eventLoop
        )
        .assumeIsolated().flatMap { user -> EventLoopFuture<Response> in
            self.issueTokens(for: user, family: Base64URL.encode(SecureRandom.bytes(16)), eventLoop: eventLoop)
        }.flatMapErrorThrowing { error in throw Self.mapped(error) }.nonisolated()
    }

    /// Succeeds when the attempt is within the per-address (and per-account) limits.
    private func throttled(
        address: String,
        account: String?,
        purpose: LoginThrottlePurpose,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<Void> {
        self.credentials.admit(address: address, account: account, purpose: purpose, eventLoop: eventLoop)
    }

    private func issueTokens(
        for user: UserRecord,
        family: String,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<Response> {
        let now = self.clock.unixSeconds()
        let refreshToken = RefreshRotator.makeToken()
        let grant = RefreshGrant(
            family: family,
            userID: user.email,
            subject: user.id,
            scopes: user.scopes,
            expiresAt: now + issuer.refreshTokenTTL
        )
        return sessions.storeRefresh(tokenHash: Self.hash(refreshToken), grant: grant, now: now).assumeIsolated()
            .flatMapThrowing {
                try self.tokenResponse(user: user, refreshToken: refreshToken, session: family, now: now)
            }.nonisolated()
    }

    /// `session`: the refresh family, carried as the access token's `sid`.
    private func tokenResponse(user: UserRecord, refreshToken: String, session: String, now: Int64) throws -> Response {
        guard ScopeToken.areValid(user.scopes) else {
            // Not what `users add` wrote: no token for it, and said loudly.
            self.logger.error(
                "unreadable user record in the store",
                metadata: ["reason": "scopes are not all scope tokens"]
            )
            throw GatewayError.internalError
        }
        let access = try issuer.accessToken(subject: user.id, scopes: user.scopes, sessionID: session, now: now)
        var json = "{\"access_token\":"
        JSONText.appendQuoted(access.token, to: &json)
        json += ",\"refresh_token\":"
        JSONText.appendQuoted(refreshToken, to: &json)
        json += ",\"expires_in\":\(issuer.accessTokenTTL),\"token_type\":\"Bearer\",\"scope\":"
        JSONText.appendQuoted(user.scopes.joined(separator: " "), to: &json)
        json += "}"
        return Response(status: 200, body: json, headers: [.init("Pragma", "no-cache")])
    }

    // MARK: refresh and logout

    private static let invalidRefresh = GatewayError(
        status: 401,
        code: "invalid_grant",
        description: "The refresh token is invalid, expired or revoked; log in again."
    )

    private static func refreshToken(from body: [UInt8]) -> String? {
        guard let object = try? StrictJSON.parseObject(body, maxDepth: 2), let token = object["refresh_token"]?.string,
            token.hasPrefix(refreshTokenPrefix), token.utf8.count <= 128
        else { return nil }
        return token
    }

    static func hash(_ refreshToken: String) -> String {
        RefreshRotator.hash(refreshToken)
    }

    private func refresh(body: [UInt8], eventLoop: any EventLoop) -> EventLoopFuture<Response> {
        guard let object = try? StrictJSON.parseObject(body, maxDepth: 2), object["refresh_token"] != nil else {
            return eventLoop.makeFailedFuture(
                GatewayError.badRequest("The body must be JSON: {\"refresh_token\": ...}.")
            )
        }
        guard let token = Self.refreshToken(from: body) else {
            return eventLoop.makeFailedFuture(Self.invalidRefresh)
        }
        let now = self.clock.unixSeconds()
        return rotator.rotate(token: token, clientID: nil, now: now, eventLoop: eventLoop) { grant, newToken in
            self.sessions.user(email: grant.userID).assumeIsolated().flatMap { user -> EventLoopFuture<String> in
                guard let user, !user.disabled, user.id == grant.subject else {
                    return self.sessions.revokeRefreshFamily(tokenHash: Self.hash(newToken), now: now).flatMapThrowing {
                        _ in
                        throw Self.invalidRefresh
                    }
                }
                do {
                    return eventLoop.makeSucceededFuture(
                        try self.tokenResponse(user: user, refreshToken: newToken, session: grant.family, now: now).body
                    )
                } catch {
                    return eventLoop.makeFailedFuture(error)
                }
            }.nonisolated()
        }.assumeIsolated().flatMapThrowing { outcome -> Response in
            switch outcome {
            case .answered(let body), .replayed(let body):
                return Response(status: 200, body: body, headers: [.init("Pragma", "no-cache")])
            case .invalid:
                throw Self.invalidRefresh
            case .reused:
                self.logger.warning("refresh token reused; its family is revoked", metadata: ["event": "refresh_reuse"])
                throw Self.invalidRefresh
            }
        }.nonisolated().flatMapErrorThrowing { error in throw Self.mapped(error) }
    }

    /// Ends the session: the refresh token's family, and the access token's own session
    /// (`sid`) and `jti`, so every access token of that login is refused on every instance.
    private func logout(body: [UInt8], authorization: [String], eventLoop: any EventLoop) -> EventLoopFuture<Response> {
        let now = self.clock.unixSeconds()
        var work: [EventLoopFuture<Void>] = []
        if let token = Self.refreshToken(from: body) {
            work.append(sessions.revokeRefreshFamily(tokenHash: Self.hash(token), now: now).map { _ in () })
        } else if !body.isEmpty, (try? StrictJSON.parseObject(body, maxDepth: 2))?["refresh_token"] == nil {
            return eventLoop.makeFailedFuture(
                GatewayError.badRequest("The body must be JSON: {\"refresh_token\": ...} (or empty).")
            )
        }
        if authorization.count == 1, let bearer = Authenticator.bearerToken(authorization[0]),
            let verified = verifyOwnToken(bearer), let id = verified.tokenID
        {
            // Stored (and published) first: if the store fails the answer is 503 and the
            // token stays valid everywhere, rather than dead on this loop only.
            work.append(
                sessions.revokeTokenID(id, expiresAt: verified.expiresAt, now: now)
                    .assumeIsolated().map {
                        self.revokeLocally(id, verified.expiresAt)
                    }.nonisolated()
            )
            if let session = verified.sessionID {
                work.append(
                    sessions.revokeSession(session, now: now).assumeIsolated().map {
                        self.revokeSessionLocally(session, now + AccessTokenDenial.retentionSeconds)
                    }.nonisolated()
                )
            }
        }
        guard !work.isEmpty else {
            return eventLoop.makeFailedFuture(
                GatewayError.badRequest("Send the refresh token in the body or the access token in Authorization.")
            )
        }
        return EventLoopFuture.andAllSucceed(work, on: eventLoop).map {
            Response(status: 200, body: "{\"logged_out\":true}")
        }.flatMapErrorThrowing { error in throw Self.mapped(error) }
    }

    private static func mapped(_ error: any Error) -> any Error {
        switch error {
        case let error as GatewayError: return error
        case CredentialStoreError.unavailable: return GatewayError.authUnavailable
        default: return GatewayError.internalError
        }
    }
}
