package import GatewayCore

/// How the pages answer: an HTML page with the security headers, a 303 (every form POST
/// ends in one), an HTML error page (browser routes never answer JSON), the stylesheet.
/// Stateless; any thread.
package enum PageResponses {
    package static let htmlType = "text/html; charset=utf-8"

    package static func page(
        _ page: PageRenderer.Page,
        _ context: [String: Any],
        status: Int = 200,
        formActionOrigin: String? = nil,
        headers: [GatewayError.HeaderField] = [],
        renderer: PageRenderer = .standard
    ) -> LocalResponse {
        self.page(
            named: page.rawValue,
            context,
            status: status,
            formActionOrigin: formActionOrigin,
            headers: headers,
            renderer: renderer
        )
    }

    /// A page of another page set (`PageRenderer(pages:)`), with the same headers.
    package static func page(
        named name: String,
        _ context: [String: Any],
        status: Int = 200,
        formActionOrigin: String? = nil,
        headers: [GatewayError.HeaderField] = [],
        renderer: PageRenderer
    ) -> LocalResponse {
        LocalResponse(
            status: status,
            contentType: htmlType,
            body: renderer.render(named: name, context),
            headers: PageHeaders.security(formActionOrigin: formActionOrigin) + headers
        )
    }

    /// `303 See Other` to `location` (the browser follows with a GET).
    package static func seeOther(_ location: String, headers: [GatewayError.HeaderField] = []) -> LocalResponse {
        LocalResponse(
            status: 303,
            contentType: htmlType,
            body: Array("<!doctype html><title>Redirecting</title>".utf8),
            headers: [.init("Location", location)] + PageHeaders.security() + headers
        )
    }

    /// An error as a page: its status, its headers (Retry-After, Allow, ...) and its
    /// sentence; the code and request id let support find it in the log.
    package static func error(_ error: GatewayError, requestID: String, title: String? = nil) -> LocalResponse {
        self.page(
            .error,
            [
                "title": title ?? Self.title(for: error.status), "message": error.description, "code": error.code,
                "request_id": requestID,
            ],
            status: error.status,
            headers: error.headers
        )
    }

    static func title(for status: Int) -> String {
        switch status {
        case 403: "Request refused"
        case 404: "Page not found"
        case 405: "Method not allowed"
        case 413: "Request too large"
        case 429: "Too many attempts"
        case 500...: "Temporarily unavailable"
        default: "Cannot continue"
        }
    }

    /// The stylesheet, cacheable for a day: it changes only with the binary.
    package static func stylesheet() -> LocalResponse {
        LocalResponse(
            status: 200,
            contentType: "text/css; charset=utf-8",
            body: Array(Stylesheet.text.utf8),
            headers: [.init("Cache-Control", "public, max-age=86400"), .init("X-Content-Type-Options", "nosniff")]
        )
    }
}
