import Foundation
package import GatewayRedis
package import NIOCore

/// What every store on Redis has in common, so that each one states only its key layout,
/// its commands and its scripts: one event loop's `RedisClient` and the key prefix, JSON
/// records written and read back under a size bound, the GET of one record, and one
/// mapping of failures to `CredentialStoreError`.
///
/// Only subclassed (`RedisCredentialStore`, `RedisSessionStore`, `RedisOAuthStore`,
/// `RedisBrowserStateStore`, `RedisOpaqueAccessTokenStore`, `RedisIntrospectionCache`).
/// Like them it holds no mutable state and is touched only on the client's event loop
/// (every future callback runs there; the client preconditions it), which is why the
/// `@unchecked Sendable` is sound.
package class RedisStore: @unchecked Sendable {
    /// How a store reads Redis's own error replies.
    enum ServerErrors {
        /// Every failure is an outage (503 with `Retry-After`): a refusing Redis is retried.
        case outage
        /// Redis's transient errors (out of memory, busy, loading, read-only, ...) are an
        /// outage; any other error reply (a wrong type, a refused command) means the data or
        /// the deployment is wrong, and is reported as corrupt.
        case corruptUnlessTransient
    }

    let client: RedisClient
    /// Prepended to every key and channel name (`[redis] key_prefix`).
    let prefix: String

    package init(client: RedisClient, keyPrefix: String) {
        self.client = client
        self.prefix = keyPrefix
    }

    package var eventLoop: any EventLoop { self.client.eventLoop }

    /// How this store reads Redis's error replies; `.outage` unless a store says otherwise.
    class var serverErrors: ServerErrors { .outage }
    /// The largest record read back: anything bigger was not written by the gateway.
    class var maximumRecordBytes: Int { 64 * 1024 }
    /// How records are written (a store whose records other code compares byte for byte
    /// keeps one formatting).
    class var recordFormatting: JSONEncoder.OutputFormatting { [] }

    /// The record stored as JSON at `key`: nil when there is none; `.corrupt` when it is not
    /// one of ours; every failure mapped.
    func record<Record: Decodable & Sendable>(at key: String, as type: Record.Type) -> EventLoopFuture<Record?> {
        self.client.send(["GET", key]).flatMapThrowing { reply -> Record? in
            switch reply {
            case .null: return nil
            case .bulkString(let bytes): return try Self.decode(type, bytes)
            default: throw CredentialStoreError.corrupt("unexpected reply to GET")
            }
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    static func encode(_ value: some Encodable) -> String? {
        let encoder = JSONEncoder()
        encoder.outputFormatting = Self.recordFormatting
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) }
    }

    static func decode<Record: Decodable>(_ type: Record.Type, _ bytes: [UInt8]) throws -> Record {
        guard bytes.count <= Self.maximumRecordBytes else {
            throw CredentialStoreError.corrupt("stored \(type) is too large")
        }
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw CredentialStoreError.corrupt("stored \(type) is not valid")
        }
    }

    /// A store error for any failure of a command, read as `serverErrors` says; a lost
    /// connection or a timeout is always `.unavailable`.
    static func mapped(_ error: any Error) -> any Error {
        switch error {
        case let error as CredentialStoreError:
            return error
        case RedisClientError.server(let message)
        where Self.serverErrors == .corruptUnlessTransient && !Self.isTransient(message):
            return CredentialStoreError.corrupt("redis error: \(message.prefix(80))")
        default:
            return CredentialStoreError.unavailable
        }
    }

    /// Server errors that say "not now" rather than "wrong data": out of memory under
    /// `noeviction`, a busy script, a loading or read-only replica. Like a lost connection
    /// they are an outage (503 with `Retry-After`), not a gateway fault.
    private static func isTransient(_ message: String) -> Bool {
        let code = message.prefix(while: { $0 != " " })
        return ["OOM", "BUSY", "LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS", "MISCONF"]
            .contains(code)
    }
}
