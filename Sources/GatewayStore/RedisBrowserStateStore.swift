import Foundation
import GatewayRedis
package import NIOCore

/// `BrowserStateStore` on Redis. Layout under the prefix `P`:
/// - `P browser-session:<sha256 hex of the cookie value>` — the session as JSON; TTL = what
///   is left of the idle limit, never past the absolute limit
/// - `P browser-sessions:<user id>` — set of that user's session hashes (for `users
///   disable`); TTL = 30 days past the last sign-in (the longest session lifetime)
/// - `P oauth-flow:<flow id>` — an authorization flow in progress as JSON; TTL 10 minutes
/// Touched only on its event loop (its client preconditions it; it holds no mutable state),
/// which makes the `@unchecked Sendable` sound.
package final class RedisBrowserStateStore: RedisStore, BrowserStateStore, @unchecked Sendable {
    private func sessionKey(_ hash: String) -> String { "\(self.prefix)browser-session:\(hash)" }
    private func indexKey(_ userID: String) -> String { "\(self.prefix)browser-sessions:\(userID)" }
    private func flowKey(_ id: String) -> String { "\(self.prefix)oauth-flow:\(id)" }

    /// The longest a browser session can live (`[ui] session_lifetime` is at most 30 days):
    /// the index of a user's sessions is kept that long past each sign-in, so it never
    /// expires before a session it names, however the session was kept alive.
    static let indexLifetime: Int64 = 30 * 86_400

    /// KEYS: session key, index key. ARGV: JSON, ttl, hash, session key prefix, index ttl.
    /// Also forgets the index's sessions that are gone (at most 256 looked at per sign-in),
    /// so the index of a user who signs in often stays small.
    private static let createScript = """
        redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
        local members = redis.call('SRANDMEMBER', KEYS[2], 256)
        for _, member in ipairs(members) do
          if redis.call('EXISTS', ARGV[4] .. member) == 0 then redis.call('SREM', KEYS[2], member) end
        end
        redis.call('SADD', KEYS[2], ARGV[3])
        redis.call('EXPIRE', KEYS[2], ARGV[5])
        return 1
        """

    package func createSession(hash: String, record: BrowserSessionRecord, ttl: Int64) -> EventLoopFuture<Void> {
        guard let json = Self.encode(record) else {
            return self.eventLoop.makeFailedFuture(CredentialStoreError.corrupt("encode"))
        }
        return self.client.evaluate(
            script: Self.createScript,
            keys: [self.sessionKey(hash), self.indexKey(record.userID)],
            arguments: [json, String(max(1, ttl)), hash, self.sessionKey(""), String(Self.indexLifetime)]
        ).map { _ in () }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    package func session(hash: String) -> EventLoopFuture<BrowserSessionRecord?> {
        self.record(at: self.sessionKey(hash), as: BrowserSessionRecord.self)
    }

    package func touchSession(hash: String, record: BrowserSessionRecord, ttl: Int64) -> EventLoopFuture<Void> {
        guard let json = Self.encode(record) else {
            return self.eventLoop.makeFailedFuture(CredentialStoreError.corrupt("encode"))
        }
        return self.client.send(["SET", self.sessionKey(hash), json, "EX", String(max(1, ttl)), "XX"])
            .map { _ in () }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    package func deleteSession(hash: String) -> EventLoopFuture<Void> {
        self.client.send(["DEL", self.sessionKey(hash)]).map { _ in () }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    /// KEYS: index key. ARGV: session key prefix. Deletes every indexed session and the
    /// index; returns how many sessions still existed.
    private static let deleteAllScript = """
        local count = 0
        for _, hash in ipairs(redis.call('SMEMBERS', KEYS[1])) do
            count = count + redis.call('DEL', ARGV[1] .. hash)
        end
        redis.call('DEL', KEYS[1])
        return count
        """

    package func deleteSessions(userID: String) -> EventLoopFuture<Int> {
        self.client.evaluate(
            script: Self.deleteAllScript,
            keys: [self.indexKey(userID)],
            arguments: ["\(self.prefix)browser-session:"]
        ).flatMapThrowing { reply in
            guard case .integer(let count) = reply else { throw CredentialStoreError.corrupt("unexpected reply") }
            return Int(count)
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    package func storeFlow(id: String, json: String, ttl: Int64) -> EventLoopFuture<Void> {
        self.client.send(["SET", self.flowKey(id), json, "EX", String(max(1, ttl))])
            .map { _ in () }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    package func flow(id: String) -> EventLoopFuture<String?> {
        self.client.send(["GET", self.flowKey(id)]).flatMapThrowing { reply in
            switch reply {
            case .null: return nil
            case .bulkString(let bytes): return String(decoding: bytes, as: UTF8.self)
            default: throw CredentialStoreError.corrupt("unexpected reply to GET")
            }
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    package func deleteFlow(id: String) -> EventLoopFuture<Bool> {
        self.client.send(["DEL", self.flowKey(id)]).flatMapThrowing { reply in
            guard case .integer(let count) = reply else {
                throw CredentialStoreError.corrupt("unexpected reply to DEL")
            }
            return count == 1
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }
}
