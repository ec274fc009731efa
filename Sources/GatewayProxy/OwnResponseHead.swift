import GatewayCore
import NIOHTTP1

/// The header fields of every response the gateway writes itself rather than relays: local
/// endpoints' answers, error responses and the head-timeout handler's raw answer. One place
/// decides them, so an error looks the same whichever path wrote it. Pure; any thread.
enum OwnResponseHead {
    /// - Parameters:
    ///   - rateLimitHeaders: `RateLimit-*` of a request the limiter admitted before it failed.
    ///   - strictTransportSecurity: the HSTS value on TLS listeners, else nil.
    static func fields(
        for response: LocalResponse,
        requestID: String,
        close: Bool,
        strictTransportSecurity: String?,
        rateLimitHeaders: [(name: String, value: String)] = []
    ) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.count))
        if !response.headers.contains(where: { $0.name.caseInsensitiveEquals("cache-control") }) {
            // Errors, tokens and credential management are never cached.
            headers.add(name: "Cache-Control", value: "no-store")
        }
        headers.add(name: "X-Request-Id", value: requestID)
        for field in response.headers {
            headers.add(name: field.name, value: field.value)
        }
        for field in rateLimitHeaders {
            headers.replaceOrAdd(name: field.name, value: field.value)
        }
        if close {
            headers.add(name: "Connection", value: "close")
        }
        if let strictTransportSecurity {
            headers.replaceOrAdd(name: "Strict-Transport-Security", value: strictTransportSecurity)
        }
        return headers
    }

    /// The whole head as HTTP/1.1 text, for writers below the HTTP codec.
    static func text(status: Int, fields: HTTPHeaders) -> String {
        let reason = HTTPResponseStatus(statusCode: status).reasonPhrase
        var head = "HTTP/1.1 \(status) \(reason)\r\n"
        for (name, value) in fields {
            head += "\(name): \(value)\r\n"
        }
        return head + "\r\n"
    }
}
