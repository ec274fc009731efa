import Foundation
import GatewayRedis
package import NIOCore

/// `CredentialStore` on Redis, over one event loop's `RedisClient`.
///
/// Layout under the key prefix `P` (default `dbgw:`):
/// - `P apikey:<hash>` — the record as JSON (the hash is HMAC-SHA256 of the key)
/// - `P apikey-id:<id>` — the hash, to find a record by id
/// - `P apikeys` — set of every id
/// - `P apikeys-by-created` — sorted set of every id, scored by creation time: the admin
///   listing's index
/// - `P apikeys-owner:<owner>` — sorted set of the owner's unrevoked ids, scored by
///   creation time: the owner's listing and the per-owner cap
/// - `P apikeys-indexed` — how many ids of `P apikeys` the two indexes account for; when the
///   set holds more (keys written before the indexes existed, or by an older gateway still
///   running during a rolling upgrade), the next script that needs the indexes adds them
/// - `P apikey-used:<id>` — last use, unix seconds (kept apart so a use never rewrites the record)
/// - channel `P events` — `revoke apikey <hash>` on revocation
/// Touched only on its event loop. It holds no mutable state of its own, and every future
/// callback below runs on the client's loop (the client preconditions it), which is why
/// the `@unchecked Sendable` is sound.
package final class RedisCredentialStore: RedisStore, CredentialStore, @unchecked Sendable {
    override class var serverErrors: ServerErrors { .corruptUnlessTransient }

    /// The pub/sub channel of revocations for `keyPrefix`.
    package static func eventsChannel(keyPrefix: String) -> String { "\(keyPrefix)events" }

    package func apiKey(hash: String) -> EventLoopFuture<APIKeyRecord?> {
        self.record(at: "\(self.prefix)apikey:\(hash)", as: APIKeyRecord.self)
    }

    package func apiKey(id: String) -> EventLoopFuture<APIKeyRecord?> {
        self.client.send(["GET", "\(self.prefix)apikey-id:\(id)"]).flatMap { reply -> EventLoopFuture<APIKeyRecord?> in
            guard case .bulkString(let hashBytes) = reply else { return self.eventLoop.makeSucceededFuture(nil) }
            let hash = String(decoding: hashBytes, as: UTF8.self)
            return self.client.send(["MGET", "\(self.prefix)apikey:\(hash)", "\(self.prefix)apikey-used:\(id)"]).map {
                reply in
                Self.record(fromPair: reply)
            }
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    package func createAPIKey(_ record: APIKeyRecord, hash: String, maxPerOwner: Int?) -> EventLoopFuture<Void> {
        let json: [UInt8]
        do {
            json = Array(try JSONEncoder().encode(record))
        } catch {
            return self.eventLoop.makeFailedFuture(CredentialStoreError.corrupt("record cannot be encoded"))
        }
        // One script, so a refused creation leaves nothing behind, a lost connection
        // cannot leave half a key, and parallel creations cannot both pass the cap.
        return self.client.evaluate(
            script: Self.createScript,
            keys: [
                "\(self.prefix)apikey-id:\(record.id)", "\(self.prefix)apikey:\(hash)", "\(self.prefix)apikeys",
                "\(self.prefix)apikeys-by-created", self.ownerIndex(record.owner), "\(self.prefix)apikeys-indexed",
            ],
            arguments: [
                hash, String(decoding: json, as: UTF8.self), record.id, String(record.createdAt),
                String(maxPerOwner ?? 0), self.prefix,
            ]
        ).flatMapThrowing { reply in
            switch reply {
            case .integer(1): return
            case .integer(-1): throw CredentialStoreError.limitReached
            default: throw CredentialStoreError.conflict
            }
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    private func ownerIndex(_ owner: String) -> String { "\(self.prefix)apikeys-owner:\(owner)" }

    /// Built once (static lets): the client finds a script's SHA by comparing the very
    /// same string.
    ///
    /// `ensureIndexed(idSet, allIndex, marker, prefix)`: adds keys the indexes do not
    /// account for (written before they existed, or by an older gateway during a rolling
    /// upgrade). The marker holds the id count the indexes account for; creations keep it
    /// in step, so a pass over the id set (inside Redis) runs only after such writes.
    private static let indexFunction = """
        local function ensureIndexed(idSet, allIndex, marker, prefix)
          local size = redis.call('SCARD', idSet)
          if tonumber(redis.call('GET', marker) or '-1') == size then return end
          for _, id in ipairs(redis.call('SMEMBERS', idSet)) do
            local hash = redis.call('GET', prefix .. 'apikey-id:' .. id)
            local json = hash and redis.call('GET', prefix .. 'apikey:' .. hash)
            if json then
              local ok, record = pcall(cjson.decode, json)
              if ok and type(record) == 'table' then
                local created = tonumber(record['created_at']) or 0
                redis.call('ZADD', allIndex, created, id)
                if record['revoked'] ~= true and type(record['owner']) == 'string' then
                  redis.call('ZADD', prefix .. 'apikeys-owner:' .. record['owner'], created, id)
                end
              end
            end
          end
          redis.call('SET', marker, size)
        end

        """

    /// KEYS: id key, record key, id set, all-keys index, owner index, indexed marker.
    /// ARGV: hash, record JSON, id, created at, cap (0: none), key prefix. Returns 1; 0 if
    /// the id or the hash is taken; -1 if the owner is at the cap.
    private static let createScript =
        indexFunction + """
            ensureIndexed(KEYS[3], KEYS[4], KEYS[6], ARGV[6])
            if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
            local cap = tonumber(ARGV[5])
            if cap > 0 and redis.call('ZCARD', KEYS[5]) >= cap then return -1 end
            redis.call('SET', KEYS[1], ARGV[1])
            redis.call('SET', KEYS[2], ARGV[2])
            if redis.call('SADD', KEYS[3], ARGV[3]) == 1 then redis.call('INCR', KEYS[6]) end
            redis.call('ZADD', KEYS[4], ARGV[4], ARGV[3])
            redis.call('ZADD', KEYS[5], ARGV[4], ARGV[3])
            return 1
            """

    package func listAPIKeys(owner: String?, offset: Int, limit: Int) -> EventLoopFuture<APIKeyPage> {
        let limit = max(1, min(limit, APIKeyPage.maximumLimit))
        let offset = max(0, offset)
        let index = owner.map(self.ownerIndex) ?? "\(self.prefix)apikeys-by-created"
        return self.client.evaluate(
            script: Self.pageScript,
            keys: [
                index, "\(self.prefix)apikeys", "\(self.prefix)apikeys-by-created", "\(self.prefix)apikeys-indexed",
            ],
            arguments: [String(offset), String(offset + limit), self.prefix]
        ).flatMapThrowing { reply -> APIKeyPage in
            guard case .array(let values) = reply, values.count % 2 == 1, case .integer(let more) = values[0] else {
                throw CredentialStoreError.corrupt("unexpected reply to the page script")
            }
            var records: [APIKeyRecord] = []
            var index = 1
            while index + 1 < values.count {
                if let record = Self.record(fromPair: .array([values[index], values[index + 1]])) {
                    records.append(record)
                }
                index += 2
            }
            return APIKeyPage(records: records, nextOffset: more == 1 ? offset + limit : nil)
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    /// KEYS: the index to page through, id set, all-keys index, indexed marker. ARGV:
    /// first rank, last rank (one past the page, to learn whether more follow), prefix.
    /// Returns {more, json1, used1, json2, used2, ...}; a missing value is nil.
    private static let pageScript =
        indexFunction + """
            ensureIndexed(KEYS[2], KEYS[3], KEYS[4], ARGV[3])
            local ids = redis.call('ZREVRANGE', KEYS[1], ARGV[1], ARGV[2])
            local pageSize = tonumber(ARGV[2]) - tonumber(ARGV[1])
            local out = {0}
            if #ids > pageSize then out[1] = 1 end
            for i = 1, math.min(#ids, pageSize) do
              local id = ids[i]
              local hash = redis.call('GET', ARGV[3] .. 'apikey-id:' .. id)
              local json = false
              if hash then json = redis.call('GET', ARGV[3] .. 'apikey:' .. hash) end
              out[#out + 1] = json
              out[#out + 1] = redis.call('GET', ARGV[3] .. 'apikey-used:' .. id)
            end
            return out
            """

    /// A record from an `[json, last used]` pair of replies; nil if the record is missing
    /// or does not decode.
    private static func record(fromPair reply: RESPValue) -> APIKeyRecord? {
        guard case .array(let values) = reply, values.count == 2, case .bulkString(let json) = values[0],
            var record = try? Self.decode(APIKeyRecord.self, json)
        else { return nil }
        if case .bulkString(let used) = values[1], used.count <= 20,
            let time = Int64(String(decoding: used, as: UTF8.self))
        {
            record.lastUsedAt = time
        }
        return record
    }

    package func listAPIKeys() -> EventLoopFuture<[APIKeyRecord]> {
        self.allPages(from: 0, collected: [])
    }

    /// The whole index a page at a time: one bounded script per page, never one command
    /// per key queued at once.
    private func allPages(from offset: Int, collected: [APIKeyRecord]) -> EventLoopFuture<[APIKeyRecord]> {
        self.listAPIKeys(owner: nil, offset: offset, limit: APIKeyPage.maximumLimit).flatMap { page in
            let records = collected + page.records
            guard let next = page.nextOffset else { return self.eventLoop.makeSucceededFuture(records) }
            return self.allPages(from: next, collected: records)
        }
    }

    package func revokeAPIKey(id: String) -> EventLoopFuture<APIKeyRecord?> {
        self.client.send(["GET", "\(self.prefix)apikey-id:\(id)"]).flatMap { reply -> EventLoopFuture<APIKeyRecord?> in
            guard case .bulkString(let hashBytes) = reply else { return self.eventLoop.makeSucceededFuture(nil) }
            let hash = String(decoding: hashBytes, as: UTF8.self)
            let recordKey = "\(self.prefix)apikey:\(hash)"
            return self.client.send(["GET", recordKey]).flatMap { recordReply -> EventLoopFuture<APIKeyRecord?> in
                guard case .bulkString(let json) = recordReply, var record = try? Self.decode(APIKeyRecord.self, json)
                else {
                    return self.eventLoop.makeSucceededFuture(nil)
                }
                record.revoked = true
                let revoked = record
                guard let encoded = try? JSONEncoder().encode(revoked) else {
                    return self.eventLoop.makeFailedFuture(CredentialStoreError.corrupt("record cannot be encoded"))
                }
                return self.client.send([Array("SET".utf8), Array(recordKey.utf8), Array(encoded)]).flatMap { _ in
                    // A revoked key no longer counts against its owner's cap.
                    self.client.send(["ZREM", self.ownerIndex(revoked.owner), revoked.id])
                }.flatMap { _ in
                    self.client.publish(
                        channel: Self.eventsChannel(keyPrefix: self.prefix),
                        message: RevocationMessage.encode(apiKeyHash: hash)
                    )
                }.map { _ in revoked }
            }
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    package func touchAPIKey(id: String, at time: Int64) -> EventLoopFuture<Void> {
        self.client.send(["SET", "\(self.prefix)apikey-used:\(id)", String(time)]).map { _ in }
            .flatMapErrorThrowing { throw Self.mapped($0) }
    }
}
