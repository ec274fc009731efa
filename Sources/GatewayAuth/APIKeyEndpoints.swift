import Foundation
package import GatewayCore
package import GatewayStore
package import NIOCore

/// The HTTP face of `APIKeyService`: `POST /v1/api-keys`, `GET /v1/api-keys?limit=&cursor=`,
/// `DELETE /v1/api-keys/{id}`. The caller is already authenticated (any credential,
/// `requiredScopes` is empty). An API key manages keys only if it holds `admin`; a user
/// session (JWT) manages its own keys, an `admin` one everybody's; nobody grants a scope
/// they do not hold. Every call first passes the management rate limit, and a session of
/// our own users is re-checked against the user record (a disabled account's still-valid
/// access token manages nothing). Lists are pages read through an index; an owner holds
/// at most `maxKeysPerOwner` unrevoked keys. Touched only on its event loop.
package struct APIKeyEndpoints {
    /// A complete response of a built-in endpoint.
    package struct Response: Sendable {
        package var status: Int
        /// A JSON document.
        package var body: String
        /// Token-bearing responses must never be cached.
        package var noStore: Bool
    }

    package static let collectionPath = "/v1/api-keys"
    /// Largest request body the endpoints read.
    package static let maximumBodyBytes: Int64 = 64 * 1024
    /// Scopes the authenticator demands before these endpoints run: none beyond a valid
    /// credential; the rules above are applied here.
    package static let requiredScopes: [String] = []
    /// Page size when the query names none.
    package static let defaultPageSize = 100
    /// Longest query string read (two short numbers need far less).
    static let maximumQueryBytes = 256

    /// Whether `normalizedPath` belongs to these endpoints.
    package static func handles(_ normalizedPath: String) -> Bool {
        normalizedPath == collectionPath || normalizedPath.hasPrefix(collectionPath + "/")
    }

    private let service: APIKeyService
    private let clock: GatewayClock
    /// The `[[rate_limits]]` policy names a key may be given.
    private let policies: Set<String>
    /// Our own issuer: its tokens are user sessions, which manage their own keys.
    private let sessionIssuer: String?
    /// Where our own users' records are re-read (nil: no user sessions).
    private let sessions: (any SessionStore)?
    private let maxKeysPerOwner: Int?
    /// The management rate limit: fails with the `GatewayError` to answer (429, 503).
    private let admit: ((Principal) -> EventLoopFuture<Void>)?

    package init(
        service: APIKeyService,
        clock: GatewayClock,
        policies: Set<String> = [],
        sessionIssuer: String? = nil,
        sessions: (any SessionStore)? = nil,
        maxKeysPerOwner: Int? = nil,
        admit: ((Principal) -> EventLoopFuture<Void>)? = nil
    ) {
        self.service = service
        self.clock = clock
        self.policies = policies
        self.sessionIssuer = sessionIssuer
        self.sessions = sessions
        self.maxKeysPerOwner = maxKeysPerOwner
        self.admit = admit
    }

    /// Answers one request; failures are `GatewayError`s rendered by the caller.
    /// - Parameter query: the request's query string (without `?`), if any.
    package func handle(
        method: String,
        normalizedPath: String,
        query: String? = nil,
        body: [UInt8],
        principal: Principal,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<Response> {
        let isAdmin = principal.grants("admin")
        // Turning a credential into a long-lived key is for admins and for sessions of this
        // gateway's own users; an API key or another issuer's token needs admin.
        let isOwnSession = principal.kind == .jwt && principal.issuer != nil && principal.issuer == self.sessionIssuer
        if !isAdmin, !isOwnSession {
            return eventLoop.makeFailedFuture(GatewayError.insufficientScope("admin"))
        }
        let admitted = self.admit?(principal) ?? eventLoop.makeSucceededVoidFuture()
        return admitted.assumeIsolated().flatMap { () -> EventLoopFuture<Void> in
            isOwnSession ? self.checkAccount(principal, eventLoop: eventLoop) : eventLoop.makeSucceededVoidFuture()
        }.flatMap { () -> EventLoopFuture<Response> in
            self.perform(
                method: method,
                normalizedPath: normalizedPath,
                query: query,
                body: body,
                principal: principal,
                eventLoop: eventLoop
            )
        }.nonisolated().flatMapErrorThrowing { error in throw Self.mapped(error) }
    }

    private static let accountInactive = GatewayError.unauthorized(
        "The account behind this session is disabled or unknown; log in again."
    )

    /// A session's access token outlives changes to its account: the record is read again
    /// for every management call, and only an existing, enabled user with this id passes.
    private func checkAccount(_ principal: Principal, eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        guard let sessions = self.sessions else { return eventLoop.makeFailedFuture(GatewayError.authUnavailable) }
        let subject = principal.subject
        return sessions.user(id: subject).flatMapThrowing { user in
            guard let user, user.id == subject, !user.disabled else { throw Self.accountInactive }
        }
    }

    private func perform(
        method: String,
        normalizedPath: String,
        query: String?,
        body: [UInt8],
        principal: Principal,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<Response> {
        let tail = normalizedPath.dropFirst(Self.collectionPath.count)
        let isAdmin = principal.grants("admin")
        let subject = principal.subject
        switch (method, tail.isEmpty) {
        case ("POST", true):
            return self.create(body: body, principal: principal, eventLoop: eventLoop)
        case ("GET", true), ("HEAD", true):
            guard let page = Self.pageRequest(query) else {
                return eventLoop.makeFailedFuture(
                    GatewayError.badRequest(
                        "The only query parameters are limit (1-\(APIKeyPage.maximumLimit)) and cursor (a next_cursor of an earlier page)."
                    )
                )
            }
            // Admins page through every key; everyone else through their own index.
            return self.service.list(owner: isAdmin ? nil : subject, offset: page.offset, limit: page.limit).map {
                page in
                Response(
                    status: 200,
                    body: Self.listJSON(page.records, nextCursor: page.nextOffset.map(String.init)),
                    noStore: true
                )
            }
        case ("DELETE", false):
            let id = String(tail.dropFirst())
            let service = self.service
            let permitted: EventLoopFuture<Bool> =
                isAdmin
                ? eventLoop.makeSucceededFuture(true)
                : service.record(id: id).map { record in record?.owner == subject }
            return permitted.assumeIsolated().flatMap { allowed -> EventLoopFuture<APIKeyRecord?> in
                // Someone else's key is reported as absent: ids are not an oracle.
                allowed ? service.revoke(id: id) : eventLoop.makeSucceededFuture(nil)
            }.nonisolated().flatMapThrowing { record in
                guard let record else {
                    throw GatewayError(status: 404, code: "not_found", description: "No API key has this id.")
                }
                return Response(status: 200, body: Self.recordJSON(record), noStore: true)
            }
        default:
            return eventLoop.makeFailedFuture(
                GatewayError(
                    status: 405,
                    code: "method_not_allowed",
                    description: "Use POST or GET on /v1/api-keys and DELETE on /v1/api-keys/{id}."
                )
            )
        }
    }

    /// `limit` and `cursor` of a list request, strictly: each at most once, decimal digits
    /// only, nothing else in the query. Nil if the query is not acceptable.
    static func pageRequest(_ query: String?) -> (offset: Int, limit: Int)? {
        var limit: Int?
        var offset: Int?
        guard let query, !query.isEmpty else { return (0, Self.defaultPageSize) }
        guard query.utf8.count <= Self.maximumQueryBytes else { return nil }
        for pair in query.split(separator: "&", omittingEmptySubsequences: false) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[1].isEmpty, parts[1].utf8.count <= 9,
                parts[1].utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                let value = Int(parts[1])
            else { return nil }
            switch parts[0] {
            case "limit" where limit == nil && (1...APIKeyPage.maximumLimit).contains(value): limit = value
            case "cursor" where offset == nil: offset = value
            default: return nil
            }
        }
        return (offset ?? 0, limit ?? Self.defaultPageSize)
    }

    private func create(body: [UInt8], principal: Principal, eventLoop: any EventLoop) -> EventLoopFuture<Response> {
        let request: CreateRequest
        do {
            request = try JSONDecoder().decode(CreateRequest.self, from: Data(body))
        } catch {
            return eventLoop.makeFailedFuture(
                GatewayError.badRequest(
                    "The body must be JSON: {\"name\": ..., \"scopes\": [...], \"expires_in\": seconds or \"90d\"}."
                )
            )
        }
        var lifetime: Int64?
        switch request.expiresIn {
        case .none: lifetime = nil
        case .seconds(let seconds): lifetime = seconds
        case .text(let text):
            guard let parsed = APIKeyService.parseLifetime(text) else {
                return eventLoop.makeFailedFuture(
                    GatewayError.badRequest("expires_in must be seconds or a duration such as \"90d\".")
                )
            }
            lifetime = parsed
        }
        if let rateLimit = request.rateLimit {
            // A tier is the operator's decision: only admins set it, and only to a known policy.
            guard principal.grants("admin") else {
                return eventLoop.makeFailedFuture(GatewayError.insufficientScope("admin"))
            }
            guard self.policies.contains(rateLimit) else {
                return eventLoop.makeFailedFuture(
                    GatewayError.badRequest("rate_limit names no [[rate_limits]] policy.")
                )
            }
        }
        return self.service.create(
            name: request.name,
            scopes: request.scopes,
            expiresInSeconds: lifetime,
            test: request.test ?? false,
            owner: principal.subject,
            grantor: principal,
            now: self.clock.unixSeconds(),
            rateLimit: request.rateLimit,
            maxKeysPerOwner: self.maxKeysPerOwner
        ).map { created in
            var json = Self.recordJSON(created.record)
            json.removeLast()
            json += ",\"key\":"
            JSONText.appendQuoted(created.key, to: &json)
            json += "}"
            return Response(status: 201, body: json, noStore: true)
        }
    }

    private struct CreateRequest: Decodable {
        enum Lifetime: Decodable {
            case seconds(Int64)
            case text(String)

            init(from decoder: any Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let seconds = try? container.decode(Int64.self) {
                    self = .seconds(seconds)
                } else {
                    self = .text(try container.decode(String.self))
                }
            }
        }

        var name: String
        var scopes: [String]
        var expiresIn: Lifetime?
        var test: Bool?
        var rateLimit: String?

        enum CodingKeys: String, CodingKey {
            case name, scopes, test
            case expiresIn = "expires_in"
            case rateLimit = "rate_limit"
        }
    }

    /// A record as JSON, without any secret (there is none stored).
    package static func recordJSON(_ record: APIKeyRecord) -> String {
        var json = "{\"id\":"
        JSONText.appendQuoted(record.id, to: &json)
        json += ",\"name\":"
        JSONText.appendQuoted(record.name, to: &json)
        json += ",\"scopes\":[" + record.scopes.map(JSONText.quoted).joined(separator: ",") + "]"
        json += ",\"owner\":"
        JSONText.appendQuoted(record.owner, to: &json)
        json += ",\"created_at\":\(record.createdAt)"
        json += ",\"expires_at\":" + (record.expiresAt.map(String.init) ?? "null")
        json += ",\"last_used_at\":" + (record.lastUsedAt.map(String.init) ?? "null")
        json += ",\"revoked\":\(record.revoked)"
        json += ",\"last4\":"
        JSONText.appendQuoted(record.last4, to: &json)
        json += ",\"environment\":"
        JSONText.appendQuoted(record.environment, to: &json)
        if let rateLimit = record.rateLimit {
            json += ",\"rate_limit\":"
            JSONText.appendQuoted(rateLimit, to: &json)
        }
        json += "}"
        return json
    }

    /// `{"api_keys": [...], "next_cursor": "..." or null}`.
    static func listJSON(_ records: [APIKeyRecord], nextCursor: String?) -> String {
        var json = "{\"api_keys\":[" + records.map(recordJSON).joined(separator: ",") + "],\"next_cursor\":"
        if let nextCursor {
            JSONText.appendQuoted(nextCursor, to: &json)
        } else {
            json += "null"
        }
        return json + "}"
    }

    private static func mapped(_ error: any Error) -> any Error {
        switch error {
        case let error as GatewayError:
            return error
        case APIKeyService.RequestError.invalid(let message):
            return GatewayError.badRequest("Invalid API key request: \(message).")
        case APIKeyService.RequestError.scopeNotHeld(let scope):
            return GatewayError(
                status: 403,
                code: "insufficient_scope",
                description: "You cannot grant the \(scope) scope because you do not hold it."
            )
        case CredentialStoreError.unavailable:
            return GatewayError.authUnavailable
        case CredentialStoreError.limitReached:
            return GatewayError(
                status: 409,
                code: "key_limit_reached",
                description: "This owner already holds the most API keys allowed; revoke one before creating another."
            )
        default:
            return GatewayError.internalError
        }
    }
}
