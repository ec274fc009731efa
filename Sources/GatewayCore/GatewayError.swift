/// An error the gateway reports to a client: an HTTP status, a stable machine-readable
/// code and one sentence a person can act on.
///
/// Errors are values; the JSON body is rendered in exactly one place
/// (`GatewayError.jsonBody(requestID:)`), so an underlying error's text never reaches a
/// client. Immutable and `Sendable`: any thread may create or read one.
package struct GatewayError: Error, Hashable, Sendable {
    /// The HTTP status code sent to the client.
    package var status: Int
    /// The `error` member of the JSON body (e.g. `invalid_request`).
    package var code: String
    /// The `error_description` member: a sentence a person can act on.
    package var description: String
    /// Headers the error adds to the response (e.g. `WWW-Authenticate`).
    package var headers: [HeaderField]

    /// One response header.
    package struct HeaderField: Hashable, Sendable {
        package var name: String
        package var value: String

        package init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    package init(status: Int, code: String, description: String, headers: [HeaderField] = []) {
        self.status = status
        self.code = code
        self.description = description
        self.headers = headers
    }
}

extension GatewayError {
    /// 401 with RFC 6750 `WWW-Authenticate`. A request with no credential at all gets
    /// the challenge without an error code (RFC 6750 §3.1).
    package static func unauthorized(_ description: String, credentialPresent: Bool = true) -> GatewayError {
        let challenge =
            credentialPresent
            ? "Bearer realm=\"dbaudit\", error=\"invalid_token\", error_description=\"\(description.replacingQuotes())\""
            : "Bearer realm=\"dbaudit\""
        return GatewayError(
            status: 401,
            code: credentialPresent ? "invalid_token" : "missing_credential",
            description: description,
            headers: [HeaderField("WWW-Authenticate", challenge)]
        )
    }

    /// 403 naming the scope the caller lacks.
    package static func insufficientScope(_ scope: String) -> GatewayError {
        GatewayError(
            status: 403,
            code: "insufficient_scope",
            description: "This request needs the \(scope) scope, which your credential does not have.",
            headers: [
                HeaderField(
                    "WWW-Authenticate",
                    "Bearer realm=\"dbaudit\", error=\"insufficient_scope\", scope=\"\(scope)\""
                )
            ]
        )
    }

    /// 503: the credential store cannot be asked and the credential is not cached. Never
    /// a 401: an outage is not the caller's fault.
    package static let authUnavailable = GatewayError(
        status: 503,
        code: "auth_unavailable",
        description: "Credentials cannot be checked right now; retry shortly.",
        headers: [HeaderField("Retry-After", "1")]
    )

    package static let routeNotFound = GatewayError(
        status: 404,
        code: "not_found",
        description: "No route is configured for this method and path."
    )
}

extension String {
    fileprivate func replacingQuotes() -> String {
        String(self.map { $0 == "\"" ? "'" : $0 })
    }
}

extension GatewayError {
    package static func badRequest(_ description: String) -> GatewayError {
        GatewayError(status: 400, code: "invalid_request", description: description)
    }

    package static let notFound = GatewayError(
        status: 404,
        code: "not_found",
        description: "No resource exists at this path."
    )

    package static let methodNotAllowed = GatewayError(
        status: 405,
        code: "method_not_allowed",
        description: "This method is not supported by the gateway."
    )

    package static let headerReadTimeout = GatewayError(
        status: 408,
        code: "request_timeout",
        description: "The request headers were not received in time; send the complete request head promptly."
    )

    package static let bodyReadTimeout = GatewayError(
        status: 408,
        code: "request_timeout",
        description: "The request body stalled; send the body without long pauses."
    )

    package static func bodyTooLarge(limit: Int) -> GatewayError {
        GatewayError(
            status: 413,
            code: "request_too_large",
            description: "The request body exceeds the limit of \(limit) bytes."
        )
    }

    package static func headersTooLarge(limit: Int) -> GatewayError {
        GatewayError(
            status: 431,
            code: "request_header_fields_too_large",
            description: "The request headers exceed the limit of \(limit) bytes."
        )
    }

    package static let upstreamUnavailable = GatewayError(
        status: 502,
        code: "upstream_unavailable",
        description: "The upstream service could not be reached; try again shortly."
    )

    package static let upstreamProtocolError = GatewayError(
        status: 502,
        code: "upstream_error",
        description: "The upstream service sent an invalid or incomplete response."
    )

    /// The upstream's certificate did not verify (unknown CA, wrong name, expired).
    package static let upstreamCertificateInvalid = GatewayError(
        status: 502,
        code: "upstream_tls_error",
        description:
            "The upstream service's TLS certificate could not be verified; the gateway's operators must fix its certificate or the gateway's [upstream] ca_file or tls_server_name."
    )

    /// The TLS handshake with the upstream failed for another reason (protocol, timeout).
    package static let upstreamTLSFailed = GatewayError(
        status: 502,
        code: "upstream_tls_error",
        description: "The TLS handshake with the upstream service failed; try again shortly."
    )

    package static let upstreamTimeout = GatewayError(
        status: 504,
        code: "upstream_timeout",
        description: "The upstream service did not answer in time; try again shortly."
    )

    package static let shuttingDown = GatewayError(
        status: 503,
        code: "shutting_down",
        description: "The gateway is shutting down; retry on another instance."
    )

    package static let internalError = GatewayError(
        status: 500,
        code: "internal_error",
        description: "The gateway hit an unexpected condition; the request was not forwarded."
    )
}

extension GatewayError {
    /// The JSON body of every error the gateway makes:
    /// `{"error": ..., "error_description": ..., "request_id": ...}`.
    package func jsonBody(requestID: String) -> String {
        var out = "{\"error\":"
        JSONText.appendQuoted(self.code, to: &out)
        out += ",\"error_description\":"
        JSONText.appendQuoted(self.description, to: &out)
        out += ",\"request_id\":"
        JSONText.appendQuoted(requestID, to: &out)
        out += "}"
        return out
    }
}
