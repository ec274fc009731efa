import Foundation
import GatewayCore
import GatewayRedis
package import NIOCore

/// `IntrospectionCacheStore` on Redis: `P introspect:<sha256 hex>` holds the result as JSON
/// and expires at its `cached_until`. Touched only on its event loop (futures complete on
/// the client's loop, which the client preconditions), so `@unchecked Sendable` is sound.
package final class RedisIntrospectionCache: RedisStore, IntrospectionCacheStore, @unchecked Sendable {
    override class var maximumRecordBytes: Int { 16 * 1024 }

    package static func key(hash: String, keyPrefix: String) -> String { "\(keyPrefix)introspect:\(hash)" }

    package func cachedIntrospection(hash: String) -> EventLoopFuture<IntrospectionResult?> {
        self.record(at: Self.key(hash: hash, keyPrefix: self.prefix), as: IntrospectionResult.self)
    }

    package func cacheIntrospection(hash: String, result: IntrospectionResult, now: Int64) -> EventLoopFuture<Void> {
        let ttl = result.cachedUntil - now
        guard ttl > 0 else { return self.eventLoop.makeSucceededVoidFuture() }
        guard let json = try? JSONEncoder().encode(result) else {
            return self.eventLoop.makeFailedFuture(CredentialStoreError.corrupt("result cannot be encoded"))
        }
        return self.client.send([
            Array("SET".utf8), Array(Self.key(hash: hash, keyPrefix: self.prefix).utf8), Array(json), Array("EX".utf8),
            Array(String(ttl).utf8),
        ]).map { _ in }.flatMapErrorThrowing { throw Self.mapped($0) }
    }
}
