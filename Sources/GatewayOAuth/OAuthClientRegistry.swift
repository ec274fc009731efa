package import GatewayConfig
package import GatewayCrypto
package import GatewayStore
package import NIOCore

/// Finds OAuth clients by id: those declared in `[[oauth.clients]]` first (they win an id
/// clash), then those registered with `dbaudit-gateway clients add` in the `OAuthStore`.
/// Verifies client secrets in constant time against the peppered hash. One instance per
/// event loop (the store is loop-bound); touched only there. `verifySecret` is pure and may
/// run on any thread (the token endpoint runs it on the thread pool).
package final class OAuthClientRegistry: @unchecked Sendable {
    private let configured: [String: OAuthClient]
    private let store: any OAuthStore
    private let hmac: HMACSHA256

    /// - Parameters:
    ///   - configured: `configuredClients(_:hmac:)` of the current configuration.
    ///   - hmac: the API-key hasher (keyed with the pepper); client secrets use the same.
    package init(configured: [String: OAuthClient], store: any OAuthStore, hmac: HMACSHA256) {
        self.configured = configured
        self.store = store
        self.hmac = hmac
    }

    /// The `[[oauth.clients]]` of `settings` as clients, secrets hashed. Call once per
    /// (re)load, off the event loops; the result is shared by every loop's registry.
    package static func configuredClients(_ settings: OAuthSettings?, hmac: HMACSHA256) -> [String: OAuthClient] {
        var clients: [String: OAuthClient] = [:]
        for entry in settings?.clients ?? [] {
            clients[entry.id] = OAuthClient(
                entry,
                secretHash: entry.secret.map { secretHash($0.value, hmac: hmac) },
                source: .config,
                createdAt: 0
            )
        }
        return clients
    }

    /// Hex HMAC-SHA256 of `secret` under the pepper: the only form a secret is kept in.
    package static func secretHash(_ secret: String, hmac: HMACSHA256) -> String {
        Hex.encode(hmac.authenticationCode(for: Array(secret.utf8)))
    }

    package var eventLoop: any EventLoop { self.store.eventLoop }

    /// Whether `id` is declared in the configuration (a registration of that id is refused).
    package func isConfigured(_ id: String) -> Bool { self.configured[id] != nil }

    /// The client `id`, or nil. Ids outside the allowed characters are never looked up.
    package func client(id: String) -> EventLoopFuture<OAuthClient?> {
        guard OAuthClientID.isValid(id) else { return self.store.eventLoop.makeSucceededFuture(nil) }
        if let client = self.configured[id] { return self.store.eventLoop.makeSucceededFuture(client) }
        return self.store.client(id: id).map { client in
            client.map {
                var stored = $0
                stored.source = .store
                return stored
            }
        }
    }

    /// Whether `secret` is `client`'s secret; always false for a public client. Time does
    /// not depend on where the hashes differ.
    package func verifySecret(_ secret: String, of client: OAuthClient) -> Bool {
        Self.verify(secret, of: client, hmac: self.hmac)
    }

    /// `verifySecret` without a registry, for the thread pool.
    package static func verify(_ secret: String, of client: OAuthClient, hmac: HMACSHA256) -> Bool {
        guard !client.isPublic, let stored = client.secretHash, !secret.isEmpty,
            secret.utf8.count <= OAuthClientCredentials.maximumSecretLength
        else {
            return false
        }
        let presented = Array(secretHash(secret, hmac: hmac).utf8)
        return HMACSHA256.constantTimeEquals(presented, Array(stored.utf8))
    }

    /// The hasher, for work moved to the thread pool.
    package var hasher: HMACSHA256 { self.hmac }
}
