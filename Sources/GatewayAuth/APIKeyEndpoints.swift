import Foundation
package import GatewayCore
package import GatewayStore
package import NIOCore

/// The HTTP face of `APIKeyService`: `POST /v1/api-keys`, `GET /v1/api-keys`,
/// `DELETE /v1/api-keys/{id}`. The caller is already authenticated (any
/// credential, `requiredScopes` is empty). An API key manages keys only if it holds `admin`;
/// a user session (JWT) manages its own keys, an `admin` one everybody's; nobody grants a
/// scope they do not hold. Touched only on its event loop.
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

    /// Whether `normalizedPath` belongs to these endpoints.
    package static func handles(_ normalizedPath: String) -> Bool {
        normalizedPath == collectionPath || normalizedPath.hasPrefix(collectionPath + "/")
    }

    private let service: APIKeyService
    private let now: () -> Int64
    /// The `[[rate_limits]]` policy names a key may be given.
    private let policies: Set<String>
    /// Our own issuer: its tokens are user sessions, which manage their own keys.
    private let sessionIssuer: String?

    package init(service: APIKeyService, now: @escaping () -> Int64, policies: Set<String> = [], sessionIssuer: String? = nil) {
        self.service = service
        self.now = now
        self.policies = policies
        self.sessionIssuer = sessionIssuer
    }

    /// Answers one request; failures are `GatewayError`s rendered by the caller.
    package func handle(
        method: String,
        normalizedPath: String,
        body: [UInt8],
        principal: Principal,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<Response> {
        let tail = normalizedPath.dropFirst(Self.collectionPath.count)
        let isAdmin = principal.grants("admin")
        // Turning a credential into a long-lived key is for admins and for sessions of this
        // gateway's own users; an API key or another issuer's token needs admin.
        let isOwnSession = principal.kind == .jwt && principal.issuer != nil && principal.issuer == self.sessionIssuer
        if !isAdmin, !isOwnSession {
            return eventLoop.makeFailedFuture(GatewayError.insufficientScope("admin"))
        }
        let subject = principal.subject
        switch (method, tail.isEmpty) {
        case ("POST", true):
            return self.create(body: body, principal: principal, eventLoop: eventLoop)
        case ("GET", true), ("HEAD", true):
            return self.service.list().map { records in
                let visible = isAdmin ? records : records.filter { $0.owner == subject }
                return Response(status: 200, body: Self.listJSON(visible), noStore: true)
            }.flatMapErrorThrowing { error in throw Self.mapped(error) }
        case ("DELETE", false):
            let id = String(tail.dropFirst())
            let service = self.service
            let permitted: EventLoopFuture<Bool> =
                isAdmin
                ? eventLoop.makeSucceededFuture(true)
                : service.list().map { records in records.contains { $0.id == id && $0.owner == subject } }
            return permitted.assumeIsolated().flatMap { allowed -> EventLoopFuture<APIKeyRecord?> in
                // Someone else's key is reported as absent: ids are not an oracle.
                allowed ? service.revoke(id: id) : eventLoop.makeSucceededFuture(nil)
            }.nonisolated().flatMapThrowing { record in
                guard let record else {
                    throw GatewayError(status: 404, code: "not_found", description: "No API key has this id.")
                }
                return Response(status: 200, body: Self.recordJSON(record), noStore: true)
            }.flatMapErrorThrowing { error in throw Self.mapped(error) }
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

    private func create(body: [UInt8], principal: Principal, eventLoop: any EventLoop) -> EventLoopFuture<Response> {
        let request: CreateRequest
        do {
            request = try JSONDecoder().decode(CreateRequest.self, from: Data(body))
        } catch {
            return eventLoop.makeFailedFuture(
                GatewayError.badRequest("The body must be JSON: {\"name\": ..., \"scopes\": [...], \"expires_in\": seconds or \"90d\"}.")
            )
        }
        var lifetime: Int64?
        switch request.expiresIn {
        case .none: lifetime = nil
        case .seconds(let seconds): lifetime = seconds
        case .text(let text):
            guard let parsed = APIKeyService.parseLifetime(text) else {
                return eventLoop.makeFailedFuture(GatewayError.badRequest("expires_in must be seconds or a duration such as \"90d\"."))
            }
            lifetime = parsed
        }
        if let rateLimit = request.rateLimit {
            // A tier is the operator's decision: only admins set it, and only to a known policy.
            guard principal.grants("admin") else {
                return eventLoop.makeFailedFuture(GatewayError.insufficientScope("admin"))
            }
            guard self.policies.contains(rateLimit) else {
                return eventLoop.makeFailedFuture(GatewayError.badRequest("rate_limit names no [[rate_limits]] policy."))
            }
        }
        return self.service.create(
            name: request.name,
            scopes: request.scopes,
            expiresInSeconds: lifetime,
            test: request.test ?? false,
            owner: principal.subject,
            grantor: principal,
            now: self.now(),
            rateLimit: request.rateLimit
        ).map { created in
            var json = Self.recordJSON(created.record)
            json.removeLast()
            json += ",\"key\":"
            JSONText.appendQuoted(created.key, to: &json)
            json += "}"
            return Response(status: 201, body: json, noStore: true)
        }.flatMapErrorThrowing { error in throw Self.mapped(error) }
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

    static func listJSON(_ records: [APIKeyRecord]) -> String {
        "{\"api_keys\":[" + records.map(recordJSON).joined(separator: ",") + "]}"
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
        default:
            return GatewayError.internalError
        }
    }
}
