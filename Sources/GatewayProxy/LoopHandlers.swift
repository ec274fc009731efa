package import GatewayAuth
package import GatewayCore

/// What one event loop answers requests with besides proxying: the credential and scope
/// decisions, `/v1/api-keys`, the session endpoints and the server's local endpoints. The
/// server builds them for each configuration (its per-loop assembly keeps the lasting state,
/// such as the credential cache, inside them) and hands them to `LoopContext`. Built and
/// used on that loop only.
package struct LoopHandlers {
    /// Route, credential and scope decisions.
    package var authenticator: Authenticator
    /// `/v1/api-keys`.
    package var apiKeyEndpoints: APIKeyEndpoints
    /// Login, refresh, logout, JWKS (nil unless we are an issuer).
    package var sessionEndpoints: SessionEndpoints?
    /// Endpoints answered on this loop besides the ones above, in match order.
    package var localEndpoints: [any LocalEndpoint]

    package init(
        authenticator: Authenticator,
        apiKeyEndpoints: APIKeyEndpoints,
        sessionEndpoints: SessionEndpoints? = nil,
        localEndpoints: [any LocalEndpoint] = []
    ) {
        self.authenticator = authenticator
        self.apiKeyEndpoints = apiKeyEndpoints
        self.sessionEndpoints = sessionEndpoints
        self.localEndpoints = localEndpoints
    }
}
