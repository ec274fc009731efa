import Foundation
import GatewayRedis
package import NIOCore

/// `OpaqueAccessTokenStore` on Redis, over one event loop's `RedisClient`.
///
/// Layout under the key prefix `P`:
/// - `P oauth-at:<hash>` — the record as JSON; expires with the token
/// - channel `P events` — `revoke oauth-at <hash>` on revocation
/// Touched only on its event loop; it holds no mutable state, and every callback runs on the
/// client's loop (the client preconditions it), which makes the `@unchecked Sendable` sound.
package final class RedisOpaqueAccessTokenStore: RedisStore, OpaqueAccessTokenStore, @unchecked Sendable {
    /// The largest record read back; anything bigger was not written by the gateway.
    override class var maximumRecordBytes: Int { 16 * 1024 }

    /// The Redis key of the record under `hash`.
    package static func key(hash: String, keyPrefix: String) -> String { "\(keyPrefix)oauth-at:\(hash)" }

    package func storeOpaqueAccessToken(
        hash: String,
        record: OpaqueAccessTokenRecord,
        now: Int64
    ) -> EventLoopFuture<Void> {
        guard let json = try? JSONEncoder().encode(record) else {
            return self.eventLoop.makeFailedFuture(CredentialStoreError.corrupt("record cannot be encoded"))
        }
        let ttl = max(1, record.expiresAt - now)
        return self.client.send([
            Array("SET".utf8), Array(Self.key(hash: hash, keyPrefix: self.prefix).utf8), Array(json),
            Array("EX".utf8), Array(String(ttl).utf8), Array("NX".utf8),
        ]).flatMapThrowing { reply in
            guard case .simpleString = reply else { throw CredentialStoreError.conflict }
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    package func opaqueAccessToken(hash: String) -> EventLoopFuture<OpaqueAccessTokenRecord?> {
        self.record(at: Self.key(hash: hash, keyPrefix: self.prefix), as: OpaqueAccessTokenRecord.self)
    }

    /// KEYS: the record key. ARGV: channel, message, how to publish (`RedisClient`'s
    /// `scriptPublishCommand`: `PUBLISH`, `SPUBLISH`, or "" when the caller publishes after
    /// the script). Returns how many keys were deleted. One script: the deletion and its
    /// announcement are never separated by a lost connection. Published even when the key
    /// was already gone, so a cache that missed an earlier message drops the token now. A
    /// cluster node before Redis 7 does not know `SPUBLISH`: the message goes out with
    /// `PUBLISH`, where the subscription listens on such a node.
    private static let revokeScript = """
        local deleted = redis.call('DEL', KEYS[1])
        if ARGV[3] == 'SPUBLISH' then
            local sent = redis.pcall('SPUBLISH', ARGV[1], ARGV[2])
            if type(sent) == 'table' and sent.err then
                if not string.find(sent.err, 'nknown', 1, true) then return sent end
                redis.call('PUBLISH', ARGV[1], ARGV[2])
            end
        elseif ARGV[3] == 'PUBLISH' then
            redis.call('PUBLISH', ARGV[1], ARGV[2])
        end
        return deleted
        """

    package func revokeOpaqueAccessToken(hash: String) -> EventLoopFuture<Bool> {
        let key = Self.key(hash: hash, keyPrefix: self.prefix)
        let channel = RedisCredentialStore.eventsChannel(keyPrefix: self.prefix)
        let message = RevocationMessage.encode(opaqueAccessTokenHash: hash)
        let publishing = self.client.scriptPublishCommand(channel: channel, keys: [key])
        return self.client.evaluate(
            script: Self.revokeScript,
            keys: [key],
            arguments: [channel, message, publishing]
        ).flatMapThrowing { reply -> Bool in
            guard case .integer(let deleted) = reply else {
                throw CredentialStoreError.corrupt("unexpected reply to the revocation script")
            }
            return deleted == 1
        }.flatMap { deleted in
            guard publishing.isEmpty else { return self.eventLoop.makeSucceededFuture(deleted) }
            return self.client.publish(channel: channel, message: message).map { _ in deleted }
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }
}
