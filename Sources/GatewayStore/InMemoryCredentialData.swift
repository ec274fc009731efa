import NIOConcurrencyHelpers

/// The process-local credential data shared by every event loop's `InMemoryCredentialStore`.
/// Guarded by a lock: it is the demo and single-node store, where a lock on a cache miss is
/// acceptable (hits are served from each loop's cache without touching it).
package final class InMemoryCredentialData: Sendable {
    private struct Storage {
        var recordsByHash: [String: APIKeyRecord] = [:]
        var hashByID: [String: String] = [:]
        /// Unrevoked keys per owner: the count the per-owner cap is checked against.
        var liveByOwner: [String: Int] = [:]
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

    func get(id: String) -> APIKeyRecord? {
        self.storage.withLockedValue { storage in storage.hashByID[id].flatMap { storage.recordsByHash[$0] } }
    }

    func create(_ record: APIKeyRecord, hash: String, maxPerOwner: Int?) -> CredentialStoreError? {
        self.storage.withLockedValue { storage in
            guard storage.recordsByHash[hash] == nil, storage.hashByID[record.id] == nil else { return .conflict }
            let live = storage.liveByOwner[record.owner, default: 0]
            if let maxPerOwner, live >= maxPerOwner { return .limitReached }
            storage.recordsByHash[hash] = record
            storage.hashByID[record.id] = hash
            if !record.revoked { storage.liveByOwner[record.owner] = live + 1 }
            return nil
        }
    }

    func list() -> [APIKeyRecord] {
        self.storage.withLockedValue { Array($0.recordsByHash.values) }
            .sorted { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) }
    }

    func list(owner: String?, offset: Int, limit: Int) -> APIKeyPage {
        let all = self.list().filter { record in owner.map { record.owner == $0 && !record.revoked } ?? true }
        let start = min(offset, all.count)
        let end = min(start + limit, all.count)
        return APIKeyPage(records: Array(all[start..<end]), nextOffset: end < all.count ? end : nil)
    }

    func revoke(id: String) -> APIKeyRecord? {
        let result: (APIKeyRecord, String)? = self.storage.withLockedValue { storage in
            guard let hash = storage.hashByID[id], var record = storage.recordsByHash[hash] else { return nil }
            if !record.revoked {
                storage.liveByOwner[record.owner, default: 1] -= 1
                if storage.liveByOwner[record.owner] == 0 { storage.liveByOwner[record.owner] = nil }
            }
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
