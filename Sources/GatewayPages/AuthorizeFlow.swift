import Foundation

/// An authorization request between `GET /oauth/authorize` and the code: stored as JSON
/// under `P oauth-flow:<flow id>` for ten minutes. `csrfToken` guards its forms;
/// `browserHash` (SHA-256 of the browser cookie) ties it to the browser that started it, so
/// it cannot be continued or signed into from another one. A value; any thread.
package struct AuthorizeFlow: Codable, Sendable, Hashable {
    package static let lifetimeSeconds: Int64 = 600

    package var request: AuthorizeRequest
    /// The request was refused after its redirect URI was proven: the refusal goes back to
    /// the client only once the user has signed in (RFC 9700 §4.11.2: never redirect an
    /// unauthenticated browser, so an erroneous request cannot make us a redirector).
    package var refusal: AuthorizeErrorRedirect?
    package var csrfToken: String
    package var browserHash: String
    package var createdAt: Int64

    package init(
        request: AuthorizeRequest,
        refusal: AuthorizeErrorRedirect? = nil,
        csrfToken: String,
        browserHash: String,
        createdAt: Int64
    ) {
        self.request = request
        self.refusal = refusal
        self.csrfToken = csrfToken
        self.browserHash = browserHash
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case request, refusal
        case csrfToken = "csrf_token"
        case browserHash = "browser_hash"
        case createdAt = "created_at"
    }

    package func json() -> String? {
        (try? JSONEncoder().encode(self)).map { String(decoding: $0, as: UTF8.self) }
    }

    package static func decode(_ json: String) -> AuthorizeFlow? {
        try? JSONDecoder().decode(AuthorizeFlow.self, from: Data(json.utf8))
    }

    /// Whether a flow id is one we could have minted (43 base64url characters): anything
    /// else is not looked up.
    package static func isValidID(_ id: String) -> Bool { BrowserCookies.isTokenValue(id) }
}
