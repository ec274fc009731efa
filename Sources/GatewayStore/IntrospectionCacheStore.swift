package import NIOCore

/// The introspection answers every gateway instance shares, keyed by the SHA-256 (hex) of
/// the token. Bound to one event loop; futures complete there. Errors:
/// `CredentialStoreError.unavailable` when the store cannot be asked, `.corrupt` for a value
/// the gateway did not write (callers treat both as a miss: the endpoint is asked).
package protocol IntrospectionCacheStore: Sendable {
    func cachedIntrospection(hash: String) -> EventLoopFuture<IntrospectionResult?>
    /// Stores `result` until its `cachedUntil`.
    func cacheIntrospection(hash: String, result: IntrospectionResult, now: Int64) -> EventLoopFuture<Void>
}
