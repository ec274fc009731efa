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

package enum CredentialStoreError: Error, Hashable, Sendable {
    /// The store could not be asked (connection refused, timeout, back-off).
    case unavailable
    /// The id or hash is already taken.
    case conflict
    /// The owner holds as many keys as it may.
    case limitReached
    /// The stored data is not what the gateway wrote.
    case corrupt(String)
}

extension CredentialStore {
    package func createAPIKey(_ record: APIKeyRecord, hash: String) -> EventLoopFuture<Void> {
        self.createAPIKey(record, hash: hash, maxPerOwner: nil)
    }
}

/// One page of a key listing. Immutable value; any thread.
package struct APIKeyPage: Sendable, Hashable {
    /// The largest page a store serves.
    package static let maximumLimit = 1000

    package var records: [APIKeyRecord]
    /// Where the next page starts, or nil if this one is the last.
    package var nextOffset: Int?

    package init(records: [APIKeyRecord], nextOffset: Int?) {
        self.records = records
        self.nextOffset = nextOffset
    }
}

/// Messages about revoked credentials, fanned out to every event loop's cache (through
/// Redis pub/sub across instances, directly within one process).
package enum RevocationMessage {
    /// `revoke apikey <hash>` on the wire.
    package static func encode(apiKeyHash: String) -> String {
        "revoke apikey \(apiKeyHash)"
    }

    /// The API-key hash named by `message`, or nil if it is not a well-formed revocation.
    package static func apiKeyHash(from message: String) -> String? {
        let parts = message.split(separator: " ")
        guard parts.count == 3, parts[0] == "revoke", parts[1] == "apikey", parts[2].utf8.count == 64,
            parts[2].utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) })
        else { return nil }
        return String(parts[2])
    }
}
