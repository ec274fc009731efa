package import NIOCore

/// Opaque OAuth access tokens: written by the token endpoint, read on the request path,
/// deleted by revocation. Implementations are bound to one event loop (the Redis one wraps
/// that loop's connection) and complete every future there. Errors as `CredentialStore`:
/// `CredentialStoreError.unavailable` when the store cannot be asked (the caller answers 503,
/// never 401); a record that does not decode is `.corrupt` (the caller treats it as absent).
package protocol OpaqueAccessTokenStore: Sendable {
    /// Stores `record` under `hash` (lowercase hex SHA-256 of the token) until its expiry.
    /// Fails with `.conflict` if the hash is already taken.
    func storeOpaqueAccessToken(hash: String, record: OpaqueAccessTokenRecord, now: Int64) -> EventLoopFuture<Void>
    /// The record stored under `hash`, or nil (unknown, expired or revoked).
    func opaqueAccessToken(hash: String) -> EventLoopFuture<OpaqueAccessTokenRecord?>
    /// Deletes it and publishes `revoke oauth-at <hash>` on `P events`; true if it existed.
    func revokeOpaqueAccessToken(hash: String) -> EventLoopFuture<Bool>
}
