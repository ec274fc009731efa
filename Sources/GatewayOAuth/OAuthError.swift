package import GatewayCore

/// The error responses of the token, revocation and introspection endpoints (RFC 6749
/// §5.2) as `GatewayError`s, so they carry the gateway's `request_id` like every other
/// error. Pure; any thread.
package enum OAuthError {
    /// The realm of the Basic challenge sent with `invalid_client`.
    package static let challenge = GatewayError.HeaderField("WWW-Authenticate", "Basic realm=\"dbaudit-gateway\"")

    package static func invalidRequest(_ description: String) -> GatewayError {
        GatewayError(status: 400, code: "invalid_request", description: description)
    }

    /// 401 with a Basic challenge (RFC 6749 §5.2: the client tried to authenticate, or must).
    package static func invalidClient(_ description: String) -> GatewayError {
        GatewayError(status: 401, code: "invalid_client", description: description, headers: [challenge])
    }

    package static func invalidGrant(_ description: String) -> GatewayError {
        GatewayError(status: 400, code: "invalid_grant", description: description)
    }

    package static func unauthorizedClient(_ description: String) -> GatewayError {
        GatewayError(status: 400, code: "unauthorized_client", description: description)
    }

    package static func unsupportedGrantType(_ description: String) -> GatewayError {
        GatewayError(status: 400, code: "unsupported_grant_type", description: description)
    }

    package static func invalidScope(_ description: String) -> GatewayError {
        GatewayError(status: 400, code: "invalid_scope", description: description)
    }
}
