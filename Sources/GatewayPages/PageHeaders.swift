package import GatewayCore

/// The response headers every page carries: a strict Content-Security-Policy (no script,
/// no inline style, only our stylesheet, forms only to ourselves, never framed), framing
/// and referrer refusals, no caching and no content sniffing. Stateless; any thread.
package enum PageHeaders {
    package static let contentSecurityPolicy = policy(formActionOrigin: nil)

    package static func policy(formActionOrigin: String?) -> String {
        let extra = formActionOrigin.map { " " + $0 } ?? ""
        return
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'\(extra); frame-ancestors 'none'"
    }

    /// - Parameter formActionOrigin: one more origin forms may lead to. Chromium applies
    ///   `form-action` to the redirects that follow a form submission, so a page whose form
    ///   answers with a 303 to the client's redirect URI names that URI's origin here.
    package static func security(formActionOrigin: String? = nil) -> [GatewayError.HeaderField] {
        [
            .init("Content-Security-Policy", policy(formActionOrigin: formActionOrigin)),
            .init("X-Frame-Options", "DENY"),
            .init("Referrer-Policy", "no-referrer"),
            .init("Cache-Control", "no-store"),
            .init("X-Content-Type-Options", "nosniff"),
        ]
    }
}
