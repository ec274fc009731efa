package import GatewayCore
package import GatewayHTTP1

/// The checks of a request head the strict parser leaves to the gateway's policy: TRACE is
/// refused (405: it would echo credentials back), the declared body size against
/// `max_body_bytes` (413, before any byte of the body is read), and `Expect`, where only one
/// `100-continue` on HTTP/1.1 is honoured (417). Everything about the syntax (version,
/// target, names and values, Host, framing, CONNECT) was decided by `HTTP1RequestParser`
/// before the head got here. Pure; any thread.
package enum RequestValidation {
    /// The body framing of an acceptable head, or the error to answer it with.
    package static func validate(
        _ head: HTTP1RequestHead,
        maxBodyBytes: Int64
    ) -> Result<HTTP1BodyFraming, GatewayError> {
        if head.method == .TRACE {
            return .failure(.methodNotAllowed)
        }
        if case .contentLength(let length) = head.framing, length > maxBodyBytes {
            return .failure(.bodyTooLarge(limit: Int(clamping: maxBodyBytes)))
        }
        if head.expect.count > 0, !Self.expectsContinue(head) {
            return .failure(
                GatewayError(
                    status: 417,
                    code: "expectation_failed",
                    description: "Only \"Expect: 100-continue\" is supported."
                )
            )
        }
        return .success(head.framing)
    }

    /// Exactly one `Expect: 100-continue` (any case) on HTTP/1.1: the interim response is
    /// owed once the request is admitted.
    package static func expectsContinue(_ head: HTTP1RequestHead) -> Bool {
        guard head.expect.count == 1, head.minorVersion == 1, let value = head.value(head.expect) else { return false }
        return value.lowercased() == "100-continue"
    }
}
