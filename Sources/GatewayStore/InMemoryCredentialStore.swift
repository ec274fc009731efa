package import NIOCore

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

    package func apiKey(id: String) -> EventLoopFuture<APIKeyRecord?> {
        self.eventLoop.makeSucceededFuture(self.data.get(id: id))
    }

    package func createAPIKey(_ record: APIKeyRecord, hash: String, maxPerOwner: Int?) -> EventLoopFuture<Void> {
        if let error = self.data.create(record, hash: hash, maxPerOwner: maxPerOwner) {
            return self.eventLoop.makeFailedFuture(error)
        }
        return self.eventLoop.makeSucceededVoidFuture()
    }

    package func listAPIKeys() -> EventLoopFuture<[APIKeyRecord]> {
        self.eventLoop.makeSucceededFuture(self.data.list())
    }

    package func listAPIKeys(owner: String?, offset: Int, limit: Int) -> EventLoopFuture<APIKeyPage> {
        self.eventLoop.makeSucceededFuture(
            self.data.list(owner: owner, offset: offset, limit: max(1, min(limit, APIKeyPage.maximumLimit)))
        )
    }

    package func revokeAPIKey(id: String) -> EventLoopFuture<APIKeyRecord?> {
        self.eventLoop.makeSucceededFuture(self.data.revoke(id: id))
    }

    package func touchAPIKey(id: String, at time: Int64) -> EventLoopFuture<Void> {
        self.data.touch(id: id, at: time)
        return self.eventLoop.makeSucceededVoidFuture()
    }
}
