package import NIOCore

/// `BrowserStateStore` over `InMemoryBrowserStateData`, for the demo (no Redis); one per
/// event loop, every future completes on that loop.
package final class InMemoryBrowserStateStore: BrowserStateStore {
    package let eventLoop: any EventLoop
    private let data: InMemoryBrowserStateData

    package init(eventLoop: any EventLoop, data: InMemoryBrowserStateData) {
        self.eventLoop = eventLoop
        self.data = data
    }

    package func createSession(hash: String, record: BrowserSessionRecord, ttl: Int64) -> EventLoopFuture<Void> {
        self.data.createSession(hash: hash, record: record, ttl: ttl)
        return self.eventLoop.makeSucceededVoidFuture()
    }

    package func session(hash: String) -> EventLoopFuture<BrowserSessionRecord?> {
        self.eventLoop.makeSucceededFuture(self.data.session(hash: hash))
    }

    package func touchSession(hash: String, record: BrowserSessionRecord, ttl: Int64) -> EventLoopFuture<Void> {
        self.data.touchSession(hash: hash, record: record, ttl: ttl)
        return self.eventLoop.makeSucceededVoidFuture()
    }

    package func deleteSession(hash: String) -> EventLoopFuture<Void> {
        self.data.deleteSession(hash: hash)
        return self.eventLoop.makeSucceededVoidFuture()
    }

    package func deleteSessions(userID: String) -> EventLoopFuture<Int> {
        self.eventLoop.makeSucceededFuture(self.data.deleteSessions(userID: userID))
    }

    package func storeFlow(id: String, json: String, ttl: Int64) -> EventLoopFuture<Void> {
        self.data.storeFlow(id: id, json: json, ttl: ttl)
        return self.eventLoop.makeSucceededVoidFuture()
    }

    package func flow(id: String) -> EventLoopFuture<String?> {
        self.eventLoop.makeSucceededFuture(self.data.flow(id: id))
    }

    package func deleteFlow(id: String) -> EventLoopFuture<Bool> {
        self.eventLoop.makeSucceededFuture(self.data.deleteFlow(id: id))
    }
}
