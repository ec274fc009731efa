import NIOConcurrencyHelpers
package import NIOCore

/// The process-local credential data shared by every event loop's `InMemoryCredentialStore`.
/// Guarded by a lock: it is the demo and single-node store, where a lock on a cache miss is
/// acceptable (hits are served from each loop's cache without touching it).
package final class InMemoryCredentialData: Sendable {
    private struct Storage {
        var recordsByHash: [String: APIKeyRecord] = [:]
        var hashByID: [String: String] = [:]
    }

    private let storage = NIOLockedValueBox(Storage())
    /// Told about every revocation, so each loop's cache drops the key.
    private let onRevoke: @Sendable (String) -> Void

    package init(onRevoke: @escaping @Sendable (String) -> Void = { _ in }) {
        self.onRevoke = onRevoke
    }

    func get(hash: String) -> APIKeyRecord? {
        self.storage.withLockedValue { $0.recordsByHash[hash] }
    }

    func create(_ record: APIKeyRecord, hash: String) -> Bool {
        self.storage.withLockedValue { storage in
            guard storage.recordsByHash[hash] == nil, storage.hashByID[record.id] == nil else { return false }
            storage.recordsByHash[hash] = record
            storage.hashByID[record.id] = hash
            return true
        }
    }

    func list() -> [APIKeyRecord] {
        self.storage.withLockedValue { Array($0.recordsByHash.values) }
            .sorted { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) }
    }

    func revoke(id: String) -> APIKeyRecord? {
        let result: (APIKeyRecord, String)? = self.storage.withLockedValue { storage in
            guard let hash = storage.hashByID[id], var record = storage.recordsByHash[hash] else { return nil }
            record.revoked = true
            storage.recordsByHash[hash] = record
            return (record, hash)
        }
        guard let (record, hash) = result else { return nil }
        self.onRevoke(hash)
        return record
    }

    func touch(id: String, at time: Int64) {
        self.storage.withLockedValue { storage in
            guard let hash = storage.hashByID[id] else { return }
            storage.recordsByHash[hash]?.lastUsedAt = time
        }
    }
}

/// `CredentialStore` over `InMemoryCredentialData`; one per event loop.
package final class InMemoryCredentialStore: CredentialStore {
    package let eventLoop: any EventLoop
    private let data: InMemoryCredentialData

    package init(eventLoop: any EventLoop, data: InMemoryCredentialData) {
        self.eventLoop = eventLoop
        self.data = data
    }

    package func apiKey(hash: String) -> EventLoopFuture<APIKeyRecord?> {
        self.eventLoop.makeSucceededFuture(self.data.get(hash: hash))
    }

    package func createAPIKey(_ record: APIKeyRecord, hash: String) -> EventLoopFuture<Void> {
        self.data.create(record, hash: hash)
            ? self.eventLoop.makeSucceededVoidFuture()
            : self.eventLoop.makeFailedFuture(CredentialStoreError.conflict)
    }

    package func listAPIKeys() -> EventLoopFuture<[APIKeyRecord]> {
        self.eventLoop.makeSucceededFuture(self.data.list())
    }

    package func revokeAPIKey(id: String) -> EventLoopFuture<APIKeyRecord?> {
        self.eventLoop.makeSucceededFuture(self.data.revoke(id: id))
    }

    package func touchAPIKey(id: String, at time: Int64) -> EventLoopFuture<Void> {
        self.data.touch(id: id, at: time)
        return self.eventLoop.makeSucceededVoidFuture()
    }
}
