import GatewayAuth
import GatewayCore

/// The endpoints the gateway answers itself instead of forwarding, what a
/// request to each needs before it runs, and how much body each reads. A value; touched on
/// the connection's event loop (a local endpoint belongs to its loop).
enum BuiltInEndpoint {
    /// `/v1/api-keys[/{id}]`: any valid credential; the endpoint applies its own rules.
    case apiKeys
    /// Login, refresh, logout and our JWKS: no credential (these are how one is obtained).
    case session
    /// An endpoint installed by the server (OAuth, browser pages): no credential checked by
    /// the proxy; the endpoint authenticates its callers itself.
    case local(any LocalEndpoint)

    static func match(_ normalizedPath: String, sessionsEnabled: Bool, local: [any LocalEndpoint]) -> BuiltInEndpoint? {
        if APIKeyEndpoints.handles(normalizedPath) { return .apiKeys }
        if sessionsEnabled, SessionEndpoints.handles(normalizedPath) { return .session }
        for endpoint in local where endpoint.handles(normalizedPath) {
            return .local(endpoint)
        }
        return nil
    }

    var requirement: RouteRequirement {
        switch self {
        case .apiKeys: .scopes(APIKeyEndpoints.requiredScopes)
        case .session, .local: .open
        }
    }

    var routeLabel: String {
        switch self {
        case .apiKeys: "builtin \(APIKeyEndpoints.collectionPath)"
        case .session: "builtin sessions"
        case .local(let endpoint): endpoint.routeLabel
        }
    }

    var maximumBodyBytes: Int64 {
        switch self {
        case .apiKeys: APIKeyEndpoints.maximumBodyBytes
        case .session: SessionEndpoints.maximumBodyBytes
        case .local(let endpoint): endpoint.maximumBodyBytes
        }
    }
}
