package import NIOCore

/// Where credentials live. One instance per event loop (the Redis one wraps that loop's
/// connection); every future completes on that loop. Implementations: `RedisCredentialStore`
/// (shared by every gateway instance) and `InMemoryCredentialStore` (one process: demo,
/// single node, tests).
///
/// Errors: `CredentialStoreError.unavailable` when the store cannot be asked (the caller
/// answers 503, never 401); a record that fails to decode is treated as absent and logged
/// by the caller.
package protocol CredentialStore: AnyObject {
    var eventLoop: any EventLoop { get }

    /// The record whose key hashes to `hash` (lowercase hex), or nil.
    func apiKey(hash: String) -> EventLoopFuture<APIKeyRecord?>

    /// The record with this id (with `lastUsedAt`), or nil.
    func apiKey(id: String) -> EventLoopFuture<APIKeyRecord?>

    /// Stores a new key. Fails with `.conflict` if the id or hash already exists and with
    /// `.limitReached` if `maxPerOwner` is given and the owner already holds that many
    /// unrevoked keys; the count and the write are one atomic step, so parallel creations
    /// cannot pass the cap.
    func createAPIKey(_ record: APIKeyRecord, hash: String, maxPerOwner: Int?) -> EventLoopFuture<Void>

    /// Every key, newest first, with `lastUsedAt` filled in (the operator's CLI; unbounded).
    func listAPIKeys() -> EventLoopFuture<[APIKeyRecord]>

    /// One page of keys, newest first, read through an index so the cost is that of the
    /// page: `owner` nil lists every key (revoked ones too), else that owner's unrevoked
    /// keys. `offset` is where the page starts; `limit` at most `APIKeyPage.maximumLimit`.
    func listAPIKeys(owner: String?, offset: Int, limit: Int) -> EventLoopFuture<APIKeyPage>

    /// Marks the key revoked and tells every gateway instance to drop it from its cache.
    /// Returns the updated record, or nil if no key has that id.
    func revokeAPIKey(id: String) -> EventLoopFuture<APIKeyRecord?>

    /// Records that the key was used at `time` (the caller throttles this).
    func touchAPIKey(id: String, at time: Int64) -> EventLoopFuture<Void>
}

extension CredentialStore {
    package func createAPIKey(_ record: APIKeyRecord, hash: String) -> EventLoopFuture<Void> {
        self.createAPIKey(record, hash: hash, maxPerOwner: nil)
    }
}
