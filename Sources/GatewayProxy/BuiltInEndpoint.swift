import GatewayAuth

/// The endpoints the gateway answers itself instead of forwarding, what a
/// request to each needs before it runs, and how much body each reads. A value; any thread.
package enum BuiltInEndpoint: Sendable, Hashable {
    /// `/v1/api-keys[/{id}]`: any valid credential; the endpoint applies its own rules.
    case apiKeys
    /// Login, refresh, logout and our JWKS: no credential (these are how one is obtained).
    case session

    static func match(_ normalizedPath: String, sessionsEnabled: Bool) -> BuiltInEndpoint? {
        if APIKeyEndpoints.handles(normalizedPath) { return .apiKeys }
        if sessionsEnabled, SessionEndpoints.handles(normalizedPath) { return .session }
        return nil
    }

    var requirement: RouteTable.Requirement {
        switch self {
        case .apiKeys: .scopes(APIKeyEndpoints.requiredScopes)
        case .session: .open
        }
    }

    var routeLabel: String {
        switch self {
        case .apiKeys: "builtin \(APIKeyEndpoints.collectionPath)"
        case .session: "builtin sessions"
        }
    }

    var maximumBodyBytes: Int64 {
        switch self {
        case .apiKeys: APIKeyEndpoints.maximumBodyBytes
        case .session: SessionEndpoints.maximumBodyBytes
        }
    }
}
