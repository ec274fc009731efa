package import NIOCore

/// `OpaqueAccessTokenStore` over `InMemoryOpaqueAccessTokenData`; one per event loop, every
/// future completes on that loop.
package final class InMemoryOpaqueAccessTokenStore: OpaqueAccessTokenStore {
    private let eventLoop: any EventLoop
    private let data: InMemoryOpaqueAccessTokenData

    package init(eventLoop: any EventLoop, data: InMemoryOpaqueAccessTokenData) {
        self.eventLoop = eventLoop
        self.data = data
    }

    package func storeOpaqueAccessToken(
        hash: String,
        record: OpaqueAccessTokenRecord,
        now: Int64
    ) -> EventLoopFuture<Void> {
        self.data.store(hash: hash, record: record, now: now)
            ? self.eventLoop.makeSucceededVoidFuture() : self.eventLoop.makeFailedFuture(CredentialStoreError.conflict)
    }

    package func opaqueAccessToken(hash: String) -> EventLoopFuture<OpaqueAccessTokenRecord?> {
        self.eventLoop.makeSucceededFuture(self.data.record(hash: hash))
    }

    package func revokeOpaqueAccessToken(hash: String) -> EventLoopFuture<Bool> {
        self.eventLoop.makeSucceededFuture(self.data.revoke(hash: hash))
    }
}
