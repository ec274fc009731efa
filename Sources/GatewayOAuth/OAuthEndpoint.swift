package import GatewayAuth
import GatewayConfig
package import GatewayCore
import GatewayCrypto
package import GatewayStore
package import Logging
package import NIOCore

/// Signs a JWT access token off the event loop (the thread pool); completes with the token,
/// its `jti` and `exp`.
package typealias AccessTokenSigner =
    @Sendable (_ subject: String, _ scopes: [String], _ clientID: String, _ now: Int64, _ loop: any EventLoop)
    -> EventLoopFuture<SignedAccessToken>

/// Checks a client secret against the client's stored hash off the event loop.
package typealias ClientSecretCheck =
    @Sendable (_ candidates: [String], _ client: OAuthClient, _ loop: any EventLoop) -> EventLoopFuture<Bool>

/// A signed JWT access token.
package struct SignedAccessToken: Sendable {
    package var token: String
    package var tokenID: String
    package var expiresAt: Int64

    package init(token: String, tokenID: String, expiresAt: Int64) {
        self.token = token
        self.tokenID = tokenID
        self.expiresAt = expiresAt
    }
}

/// The JSON side of the OAuth 2.0 authorization server: `POST /oauth/token` (authorization
/// code with PKCE, client credentials, refresh token), `POST /oauth/revoke` (RFC 7009),
/// `POST /oauth/introspect` (RFC 7662), `GET /.well-known/oauth-authorization-server`
/// (RFC 8414), and a JSON error naming what is supported for any other `/oauth/` path the
/// browser pages do not answer. Clients authenticate here (the proxy checks nothing for
/// it). Secrets are checked and tokens signed on the thread pool, never on the loop.
/// Built per event loop by the server's local-endpoint factory; touched only on that loop
/// (the `@unchecked Sendable` lets its own future callbacks, which run there, refer to it).
package final class OAuthEndpoint: LocalEndpoint, @unchecked Sendable {
    package static let tokenPath = "/oauth/token"
    package static let revokePath = "/oauth/revoke"
    package static let introspectPath = "/oauth/introspect"
    package static let authorizePath = "/oauth/authorize"
    package static let metadataPath = "/.well-known/oauth-authorization-server"
    /// Paths under `/oauth/` the browser pages answer; everything else there is ours.
    static let pagePaths: Set<String> = [
        "/oauth/authorize", "/oauth/authorize/login", "/oauth/authorize/consent", "/oauth/logout",
    ]
    static let opaqueTokenPrefix = "dbaudit_at_"

    /// Everything the endpoint works with on its loop.
    package struct Dependencies {
        package var issuer: TokenIssuer
        package var registry: OAuthClientRegistry
        package var store: any OAuthStore
        package var sessions: any SessionStore
        package var opaqueTokens: (any OpaqueAccessTokenStore)?
        /// Per address and per client (`account` = `client:<id>`), purpose `.oauthToken`.
        package var throttle: any LoginThrottle
        package var signAccessToken: AccessTokenSigner
        package var checkSecret: ClientSecretCheck
        /// Verifies an access token of ours (revocation, introspection).
        package var verifyOwnToken: (String) -> VerifiedToken?
        /// Marks an access-token id revoked on this loop at once.
        package var revokeLocally: (String, Int64) -> Void
        package var refreshReuseGraceSeconds: Int64
        package var logger: Logger
        package var clock: GatewayClock

        package init(
            issuer: TokenIssuer,
            registry: OAuthClientRegistry,
            store: any OAuthStore,
            sessions: any SessionStore,
            opaqueTokens: (any OpaqueAccessTokenStore)?,
            throttle: any LoginThrottle,
            signAccessToken: @escaping AccessTokenSigner,
            checkSecret: @escaping ClientSecretCheck,
            verifyOwnToken: @escaping (String) -> VerifiedToken?,
            revokeLocally: @escaping (String, Int64) -> Void,
            refreshReuseGraceSeconds: Int64,
            logger: Logger,
            clock: GatewayClock
        ) {
            self.issuer = issuer
            self.registry = registry
            self.store = store
            self.sessions = sessions
            self.opaqueTokens = opaqueTokens
            self.throttle = throttle
            self.signAccessToken = signAccessToken
            self.checkSecret = checkSecret
            self.verifyOwnToken = verifyOwnToken
            self.revokeLocally = revokeLocally
            self.refreshReuseGraceSeconds = refreshReuseGraceSeconds
            self.logger = logger
            self.clock = clock
        }
    }

    /// Jobs (secret checks, signatures) queued or running on the thread pool for this loop
    /// before requests get 503 `busy`: a flood cannot queue unbounded work there.
    static let maximumPendingJobs = 64

    let deps: Dependencies
    let rotator: RefreshRotator
    private var pendingJobs = 0
    let metadataDocument: String
    /// Where the metadata is served: the well-known path, plus the well-known path followed
    /// by the issuer's path when it has one (RFC 8414 §3).
    let metadataPaths: Set<String>

    package init(_ dependencies: Dependencies) {
        self.deps = dependencies
        self.rotator = RefreshRotator(
            sessions: dependencies.sessions,
            graceSeconds: dependencies.refreshReuseGraceSeconds
        )
        self.metadataDocument = Self.metadata(issuer: dependencies.issuer.issuer)
        self.metadataPaths = Self.metadataPaths(issuer: dependencies.issuer.issuer)
    }

    package var routeLabel: String { "builtin oauth" }
    package var maximumBodyBytes: Int64 { 16 * 1024 }

    package func handles(_ normalizedPath: String) -> Bool {
        if self.metadataPaths.contains(normalizedPath) { return true }
        guard normalizedPath == "/oauth" || normalizedPath.hasPrefix("/oauth/") else { return false }
        return !Self.pagePaths.contains(normalizedPath) && !normalizedPath.hasPrefix("/oauth/static/")
    }

    package func errorResponse(_ error: GatewayError, request: LocalRequest) -> LocalResponse {
        var response = LocalResponse.json(error, requestID: request.requestID)
        response.headers.append(.init("Pragma", "no-cache"))
        return response
    }

    package func handle(_ request: LocalRequest, eventLoop: any EventLoop) -> EventLoopFuture<LocalResponse> {
        let path = request.normalizedPath
        if self.metadataPaths.contains(path) {
            guard request.method == "GET" || request.method == "HEAD" else {
                return eventLoop.makeFailedFuture(Self.methodNotAllowed(path, "GET, HEAD"))
            }
            return eventLoop.makeSucceededFuture(
                LocalResponse(
                    status: 200,
                    body: self.metadataDocument,
                    headers: [.init("Cache-Control", "public, max-age=300")]
                )
            )
        }
        switch path {
        case Self.tokenPath, Self.revokePath, Self.introspectPath:
            guard request.method == "POST" else {
                return eventLoop.makeFailedFuture(Self.methodNotAllowed(path, "POST"))
            }
            let form: FormParameters
            do {
                form = try Self.form(of: request)
            } catch {
                return eventLoop.makeFailedFuture(error)
            }
            switch path {
            case Self.tokenPath: return self.token(request, form: form, eventLoop: eventLoop)
            case Self.revokePath: return self.revoke(request, form: form, eventLoop: eventLoop)
            default: return self.introspect(request, form: form, eventLoop: eventLoop)
            }
        default:
            return eventLoop.makeFailedFuture(
                GatewayError(
                    status: 404,
                    code: "unsupported_endpoint",
                    description:
                        "No OAuth endpoint at \(path.prefix(100)). Supported: GET \(Self.authorizePath), POST \(Self.tokenPath), "
                        + "POST \(Self.revokePath), POST \(Self.introspectPath), GET \(Self.metadataPath)."
                )
            )
        }
    }

    private static func methodNotAllowed(_ path: String, _ allowed: String) -> GatewayError {
        GatewayError(
            status: 405,
            code: "method_not_allowed",
            description: "Use \(allowed) on \(path).",
            headers: [.init("Allow", allowed)]
        )
    }

    /// The body as form parameters; the content type must say so.
    static func form(of request: LocalRequest) throws(GatewayError) -> FormParameters {
        let types = request.values(of: "Content-Type")
        guard types.count == 1,
            types[0].split(separator: ";", maxSplits: 1).first.map({
                $0.trimmingCharacters(in: .whitespaces).lowercased()
            })
                == "application/x-www-form-urlencoded"
        else {
            throw OAuthError.invalidRequest("The body must be application/x-www-form-urlencoded.")
        }
        do {
            return try FormParameters.parse(request.body)
        } catch {
            throw OAuthError.invalidRequest("The form is not valid: \(error.description).")
        }
    }

    /// Runs `job` (which hands work to the thread pool) unless too many are pending; its
    /// result completes back on `eventLoop`.
    func offLoop<T: Sendable>(_ eventLoop: any EventLoop, _ job: () -> EventLoopFuture<T>) -> EventLoopFuture<T> {
        guard self.pendingJobs < Self.maximumPendingJobs else {
            return eventLoop.makeFailedFuture(
                GatewayError(
                    status: 503,
                    code: "busy",
                    description: "Too many token requests in progress; retry in a second.",
                    headers: [.init("Retry-After", "1")]
                )
            )
        }
        self.pendingJobs += 1
        return job().hop(to: eventLoop).always { _ in self.pendingJobs -= 1 }
    }

    // MARK: client authentication

    /// The authenticated (or, for a public client, identified) client of a request. Every
    /// attempt is counted per address first (`[oauth] token_requests_per_address`), before
    /// any secret check or store lookup, so secrets cannot be guessed at speed through any
    /// of the endpoints; a confidential client's own budget (`token_requests_per_client`) is
    /// charged only once its secret was proven, so nobody who merely knows a client id can
    /// use it up and lock the client out.
    func authenticate(
        _ request: LocalRequest,
        form: FormParameters,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<OAuthClient> {
        let presented: PresentedClient
        do {
            presented = try PresentedClient.parse(authorization: request.values(of: "Authorization"), form: form)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        return self.admitted(address: request.clientAddress, clientID: nil, eventLoop: eventLoop).flatMap {
            self.deps.registry.client(id: presented.clientID)
        }.flatMap { client -> EventLoopFuture<OAuthClient> in
            guard let client else {
                return eventLoop.makeFailedFuture(OAuthError.invalidClient("Unknown client or wrong secret."))
            }
            if client.isPublic {
                guard presented.method == .none else {
                    return eventLoop.makeFailedFuture(
                        OAuthError.invalidClient("A public client has no secret; send only client_id.")
                    )
                }
                // Anyone can name a public client: its requests count per address only.
                return eventLoop.makeSucceededFuture(client)
            }
            guard presented.method != .none else {
                return eventLoop.makeFailedFuture(
                    OAuthError.invalidClient(
                        "This client must authenticate (client_secret_basic or client_secret_post)."
                    )
                )
            }
            return self.offLoop(eventLoop) { self.deps.checkSecret(presented.secretCandidates, client, eventLoop) }
                .flatMap { matches in
                    guard matches else {
                        return eventLoop.makeFailedFuture(OAuthError.invalidClient("Unknown client or wrong secret."))
                    }
                    return self.admitted(address: nil, clientID: client.id, eventLoop: eventLoop).map { client }
                }
        }
    }

    /// Counts one request in the address's bucket or the client's, each when given; 429
    /// `too_many_attempts` beyond.
    private func admitted(address: String?, clientID: String?, eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        self.deps.throttle.admit(
            address: address,
            account: clientID.map { "client:" + $0 },
            purpose: .oauthToken
        )
        .flatMapThrowing { decision in
            switch decision {
            case .allowed: return
            case .limited(let seconds, let headers):
                let whose = clientID == nil ? "from this address" : "for this client"
                throw GatewayError(
                    status: 429,
                    code: "too_many_attempts",
                    description: "Too many requests \(whose); wait \(seconds) seconds.",
                    headers: [.init("Retry-After", String(seconds))] + headers
                )
            case .unavailable: throw GatewayError.authUnavailable
            }
        }
    }

    /// Answers `error` for failures of the store (503) and anything unexpected (500).
    static func mapped(_ error: any Error) -> any Error {
        switch error {
        case let error as GatewayError: return error
        case CredentialStoreError.unavailable: return GatewayError.authUnavailable
        default: return GatewayError.internalError
        }
    }

    // MARK: metadata

    static func metadataPaths(issuer: String) -> Set<String> {
        var paths: Set<String> = [metadataPath]
        if let schemeEnd = issuer.range(of: "://") {
            let afterScheme = issuer[schemeEnd.upperBound...]
            if let slash = afterScheme.firstIndex(of: "/") {
                var path = String(afterScheme[slash...])
                while path.hasSuffix("/") { path.removeLast() }
                if !path.isEmpty { paths.insert(metadataPath + path) }
            }
        }
        return paths
    }

    static func endpoint(_ issuer: String, _ path: String) -> String {
        (issuer.hasSuffix("/") ? String(issuer.dropLast()) : issuer) + path
    }

    static func metadata(issuer: String) -> String {
        var json = "{\"issuer\":" + JSONText.quoted(issuer)
        json += ",\"authorization_endpoint\":" + JSONText.quoted(endpoint(issuer, authorizePath))
        json += ",\"token_endpoint\":" + JSONText.quoted(endpoint(issuer, tokenPath))
        json += ",\"revocation_endpoint\":" + JSONText.quoted(endpoint(issuer, revokePath))
        json += ",\"introspection_endpoint\":" + JSONText.quoted(endpoint(issuer, introspectPath))
        json += ",\"jwks_uri\":" + JSONText.quoted(endpoint(issuer, SessionEndpoints.jwksPath))
        json += ",\"response_types_supported\":[\"code\"],\"response_modes_supported\":[\"query\"]"
        json += ",\"grant_types_supported\":[\"authorization_code\",\"refresh_token\",\"client_credentials\"]"
        let methods = "[\"client_secret_basic\",\"client_secret_post\",\"none\"]"
        json += ",\"token_endpoint_auth_methods_supported\":" + methods
        json += ",\"revocation_endpoint_auth_methods_supported\":" + methods
        json += ",\"introspection_endpoint_auth_methods_supported\":[\"client_secret_basic\",\"client_secret_post\"]"
        json += ",\"code_challenge_methods_supported\":[\"S256\"]"
        json += ",\"scopes_supported\":[" + OAuthScopeCatalog.scopes.map(JSONText.quoted).joined(separator: ",") + "]"
        json += ",\"authorization_response_iss_parameter_supported\":true}"
        return json
    }
}
