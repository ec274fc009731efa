import Foundation
package import GatewayRedis
package import NIOCore

/// `CredentialStore` on Redis, over one event loop's `RedisClient`.
///
/// Layout under the key prefix `P` (default `dbgw:`):
/// - `P apikey:<hash>` — the record as JSON (the hash is HMAC-SHA256 of the key)
/// - `P apikey-id:<id>` — the hash, to find a record by id
/// - `P apikeys` — set of every id
/// - `P apikey-used:<id>` — last use, unix seconds (kept apart so a use never rewrites the record)
/// - channel `P events` — `revoke apikey <hash>` on revocation
/// Touched only on its event loop. It holds no mutable state of its own, and every future
/// callback below runs on the client's loop (the client preconditions it), which is why
/// the `@unchecked Sendable` is sound.
package final class RedisCredentialStore: CredentialStore, @unchecked Sendable {
    private let client: RedisClient
    private let prefix: String

    package init(client: RedisClient, keyPrefix: String) {
        self.client = client
        self.prefix = keyPrefix
    }

    package var eventLoop: any EventLoop { self.client.eventLoop }

    /// The pub/sub channel of revocations for `keyPrefix`.
    package static func eventsChannel(keyPrefix: String) -> String { "\(keyPrefix)events" }

    package func apiKey(hash: String) -> EventLoopFuture<APIKeyRecord?> {
        self.client.send(["GET", "\(self.prefix)apikey:\(hash)"]).flatMapThrowing { reply in
            switch reply {
            case .null:
                return nil
            case .bulkString(let bytes):
                return try Self.decode(bytes)
            default:
                throw CredentialStoreError.corrupt("unexpected reply to GET")
            }
        }.flatMapErrorThrowing { error in throw Self.mapped(error) }
    }

    package func createAPIKey(_ record: APIKeyRecord, hash: String) -> EventLoopFuture<Void> {
        let json: [UInt8]
        do {
            json = Array(try JSONEncoder().encode(record))
        } catch {
            return self.eventLoop.makeFailedFuture(CredentialStoreError.corrupt("record cannot be encoded"))
        }
        // One script, so a refused creation leaves nothing behind and a lost connection
        // cannot leave half a key.
        return self.client.evaluate(
            script: Self.createScript,
            keys: ["\(self.prefix)apikey-id:\(record.id)", "\(self.prefix)apikey:\(hash)", "\(self.prefix)apikeys"],
            arguments: [hash, String(decoding: json, as: UTF8.self), record.id]
        ).flatMapThrowing { reply in
            guard case .integer(1) = reply else { throw CredentialStoreError.conflict }
        }.flatMapErrorThrowing { error in throw Self.mapped(error) }
    }

    /// KEYS: id key, record key, id set. ARGV: hash, record JSON, id. Returns 1, or 0 if
    /// the id or the hash is taken.
    private static let createScript = """
        if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
        redis.call('SET', KEYS[1], ARGV[1])
        redis.call('SET', KEYS[2], ARGV[2])
        redis.call('SADD', KEYS[3], ARGV[3])
        return 1
        """

    package func listAPIKeys() -> EventLoopFuture<[APIKeyRecord]> {
        self.client.send(["SMEMBERS", "\(self.prefix)apikeys"]).flatMap { reply -> EventLoopFuture<[APIKeyRecord]> in
            guard case .array(let members) = reply else {
                return self.eventLoop.makeFailedFuture(CredentialStoreError.corrupt("unexpected reply to SMEMBERS"))
            }
            let ids = members.compactMap { value -> String? in
                if case .bulkString(let bytes) = value { return String(decoding: bytes, as: UTF8.self) }
                return nil
            }
            guard !ids.isEmpty else { return self.eventLoop.makeSucceededFuture([]) }
            let records = ids.map { id in
                self.client.send(["GET", "\(self.prefix)apikey-id:\(id)"]).flatMap { hashReply -> EventLoopFuture<APIKeyRecord?> in
                    guard case .bulkString(let hashBytes) = hashReply else { return self.eventLoop.makeSucceededFuture(nil) }
                    let hash = String(decoding: hashBytes, as: UTF8.self)
                    return self.client.send(["MGET", "\(self.prefix)apikey:\(hash)", "\(self.prefix)apikey-used:\(id)"]).map { reply in
                        guard case .array(let values) = reply, values.count == 2,
                            case .bulkString(let json) = values[0],
                            var record = try? Self.decode(json)
                        else { return nil }
                        if case .bulkString(let used) = values[1], let time = Int64(String(decoding: used, as: UTF8.self)) {
                            record.lastUsedAt = time
                        }
                        return record
                    }
                }
            }
            return EventLoopFuture.whenAllSucceed(records, on: self.eventLoop).map { found in
                found.compactMap { $0 }.sorted { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) }
            }
        }.flatMapErrorThrowing { error in throw Self.mapped(error) }
    }

    package func revokeAPIKey(id: String) -> EventLoopFuture<APIKeyRecord?> {
        self.client.send(["GET", "\(self.prefix)apikey-id:\(id)"]).flatMap { reply -> EventLoopFuture<APIKeyRecord?> in
            guard case .bulkString(let hashBytes) = reply else { return self.eventLoop.makeSucceededFuture(nil) }
            let hash = String(decoding: hashBytes, as: UTF8.self)
            let recordKey = "\(self.prefix)apikey:\(hash)"
            return self.client.send(["GET", recordKey]).flatMap { recordReply -> EventLoopFuture<APIKeyRecord?> in
                guard case .bulkString(let json) = recordReply, var record = try? Self.decode(json) else {
                    return self.eventLoop.makeSucceededFuture(nil)
                }
                record.revoked = true
                let revoked = record
                guard let encoded = try? JSONEncoder().encode(revoked) else {
                    return self.eventLoop.makeFailedFuture(CredentialStoreError.corrupt("record cannot be encoded"))
                }
                return self.client.send([Array("SET".utf8), Array(recordKey.utf8), Array(encoded)]).flatMap { _ in
                    self.client.send([
                        "PUBLISH", Self.eventsChannel(keyPrefix: self.prefix), RevocationMessage.encode(apiKeyHash: hash),
                    ])
                }.map { _ in revoked }
            }
        }.flatMapErrorThrowing { error in throw Self.mapped(error) }
    }

    package func touchAPIKey(id: String, at time: Int64) -> EventLoopFuture<Void> {
        self.client.send(["SET", "\(self.prefix)apikey-used:\(id)", String(time)]).map { _ in }
            .flatMapErrorThrowing { error in throw Self.mapped(error) }
    }

    private static func decode(_ bytes: [UInt8]) throws -> APIKeyRecord {
        guard bytes.count <= 64 * 1024 else { throw CredentialStoreError.corrupt("record larger than 64 KiB") }
        do {
            return try JSONDecoder().decode(APIKeyRecord.self, from: Data(bytes))
        } catch {
            throw CredentialStoreError.corrupt("record is not valid JSON")
        }
    }

    private static func mapped(_ error: any Error) -> any Error {
        switch error {
        case let error as CredentialStoreError:
            return error
        case RedisClientError.server(let message):
            return CredentialStoreError.corrupt("redis error: \(message.prefix(80))")
        default:
            return CredentialStoreError.unavailable
        }
    }
}
