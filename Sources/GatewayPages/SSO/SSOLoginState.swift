import Foundation
import GatewayAuth
import GatewayCrypto

/// One sign-in through a provider between `/sso/start` and `/sso/callback`: stored as JSON
/// under `P oauth-flow:sso.<SHA-256 hex of state>` (the `state` itself is never stored) for
/// ten minutes, and deleted by the first callback that presents it, so a `state` works
/// once. It holds the `nonce` the ID token must carry and the PKCE verifier, and is bound
/// to the browser that started it (hash of its browser cookie). Where to go afterwards is
/// either an authorization flow (`flow`) or a settings page (`next`). A value; any thread.
package struct SSOLoginState: Codable, Sendable, Hashable {
    package static let lifetimeSeconds: Int64 = 600

    package var provider: String
    package var nonce: String
    package var codeVerifier: String
    package var browserHash: String
    package var flow: String?
    package var next: String?
    package var createdAt: Int64

    package init(
        provider: String,
        nonce: String,
        codeVerifier: String,
        browserHash: String,
        flow: String?,
        next: String?,
        createdAt: Int64
    ) {
        self.provider = provider
        self.nonce = nonce
        self.codeVerifier = codeVerifier
        self.browserHash = browserHash
        self.flow = flow
        self.next = next
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case provider, nonce, flow, next
        case codeVerifier = "code_verifier"
        case browserHash = "browser_hash"
        case createdAt = "created_at"
    }

    /// The store id of the state value `state` (the flow store's key space).
    package static func storeID(state: String) -> String { "sso." + PageRandom.hash(state) }

    /// RFC 7636 S256: base64url(SHA-256(verifier)).
    package static func challenge(verifier: String) -> String { Base64URL.encode(Digest.sha256.hash(verifier.utf8)) }

    package enum Problem: Error, Equatable {
        case otherBrowser
        case expired
    }

    /// Whether the callback may continue this sign-in: the same browser (cookie hash
    /// compared in constant time) and within the lifetime.
    package func check(browser: String?, now: Int64) -> Problem? {
        guard let browser, CSRFCheck.matches(posted: PageRandom.hash(browser), expected: self.browserHash) else {
            return .otherBrowser
        }
        guard now - self.createdAt <= Self.lifetimeSeconds, now >= self.createdAt - 60 else { return .expired }
        return nil
    }

    package func json() -> String? {
        (try? JSONEncoder().encode(self)).map { String(decoding: $0, as: UTF8.self) }
    }

    package static func decode(_ json: String) -> SSOLoginState? {
        try? JSONDecoder().decode(SSOLoginState.self, from: Data(json.utf8))
    }
}
