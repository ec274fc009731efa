package import NIOCore

/// Browser sessions and the short-lived records of authorization flows. One instance per
/// event loop; every future completes on that loop. Redis only: the pages exist where the
/// gateway is an OAuth server, which needs Redis. Errors: `CredentialStoreError`.
package protocol BrowserStateStore: AnyObject {
    var eventLoop: any EventLoop { get }

    /// Creates session `hash` (living `ttl` seconds) and indexes it under its user, so
    /// `deleteSessions(userID:)` finds it.
    func createSession(hash: String, record: BrowserSessionRecord, ttl: Int64) -> EventLoopFuture<Void>
    func session(hash: String) -> EventLoopFuture<BrowserSessionRecord?>
    /// Rewrites an existing session (its `lastSeen`) with a new TTL; never recreates one
    /// deleted meanwhile (sign-out, `users disable`).
    func touchSession(hash: String, record: BrowserSessionRecord, ttl: Int64) -> EventLoopFuture<Void>
    func deleteSession(hash: String) -> EventLoopFuture<Void>
    /// Deletes every session of the user; returns how many existed.
    func deleteSessions(userID: String) -> EventLoopFuture<Int>

    func storeFlow(id: String, json: String, ttl: Int64) -> EventLoopFuture<Void>
    func flow(id: String) -> EventLoopFuture<String?>
    /// Deletes the flow; true if it existed (exactly one of concurrent callers gets true).
    func deleteFlow(id: String) -> EventLoopFuture<Bool>
}
