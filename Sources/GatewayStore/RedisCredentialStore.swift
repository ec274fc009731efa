import Foundation
package import GatewayConfig
package import GatewayRedis
package import NIOCore

/// `CredentialStore` on Redis, over one event loop's `RedisClient`.
///
/// Layout under the store prefix `P` (default `dbgw:`; `dbgw:{gw}:` on a cluster), with the
/// names `APIKeyKeys` gives:
/// - `P apikey:<hash>` — the record as JSON (the hash is HMAC-SHA256 of the key); on a
///   cluster `K apikey:{<hash>}` under the plain `key_prefix` `K`, in the hash's own slot
/// - `P apikey-id:<id>` — the hash, to find a record by id
/// - `P apikeys` — set of every id
/// - `P apikeys-by-created` — sorted set of every id, scored by creation time: the admin
///   listing's index
/// - `P apikeys-owner:<owner>` — sorted set of the owner's unrevoked ids, scored by
///   creation time: the owner's listing and the per-owner cap
/// - `P apikeys-indexed` — how many ids of `P apikeys` the two indexes account for; when the
///   set holds more (keys written before the indexes existed, or by an older gateway still
///   running during a rolling upgrade), the next script that needs the indexes adds them
///   (one-slot layout only: see `ensureIndexed`)
/// - `P apikey-used:<id>` — last use, unix seconds (kept apart so a use never rewrites the
///   record); on a cluster `K apikey-used:{<id>}`, in the id's own slot
/// - channel `P events` — `revoke apikey <hash>` on revocation
/// Touched only on its event loop. It holds no mutable state of its own, and every future
/// callback below runs on the client's loop (the client preconditions it), which is why
/// the `@unchecked Sendable` is sound.
package final class RedisCredentialStore: RedisStore, CredentialStore, @unchecked Sendable {
    override class var serverErrors: ServerErrors { .corruptUnlessTransient }

    private let keys: APIKeyKeys

    /// - Parameters:
    ///   - keyPrefix: the stores' prefix (`RedisSettings.storeKeyPrefix`).
    ///   - spreadKeyPrefix: on a cluster, the prefix under which records and last uses
    ///     spread over the slots (`RedisSettings.spreadKeyPrefix`); nil keeps every key
    ///     under `keyPrefix`.
    package init(client: RedisClient, keyPrefix: String, spreadKeyPrefix: String?) {
        self.keys = APIKeyKeys(indexPrefix: keyPrefix, spreadPrefix: spreadKeyPrefix)
        super.init(client: client, keyPrefix: keyPrefix)
    }

    /// The store in the layout `settings` call for.
    package convenience init(client: RedisClient, settings: RedisSettings) {
        self.init(client: client, keyPrefix: settings.storeKeyPrefix, spreadKeyPrefix: settings.spreadKeyPrefix)
    }

    /// The pub/sub channel of revocations for `keyPrefix`.
    package static func eventsChannel(keyPrefix: String) -> String { "\(keyPrefix)events" }

    package func apiKey(hash: String) -> EventLoopFuture<APIKeyRecord?> {
        self.record(at: self.keys.record(hash: hash), as: APIKeyRecord.self)
    }

    package func apiKey(id: String) -> EventLoopFuture<APIKeyRecord?> {
        self.client.send(["GET", self.keys.hashOf(id: id)]).flatMap { reply -> EventLoopFuture<APIKeyRecord?> in
            guard let hash = Self.storedHash(reply) else { return self.eventLoop.makeSucceededFuture(nil) }
            return self.records([(id, hash)]).map { $0.first ?? nil }
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    /// A hash read back from an id pointer: lowercase hex of a sane length, else nil (the
    /// value builds a key name, so nothing else is used).
    private static func storedHash(_ reply: RESPValue) -> String? {
        guard case .bulkString(let bytes) = reply, (1...128).contains(bytes.count),
            bytes.allSatisfy({
                (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
                    || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0)
            })
        else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The records of `entries` with their last use, in order (nil where a record is missing
    /// or does not decode). One `MGET` when they share a slot; on a cluster one `GET` per key,
    /// all pipelined at once (the callers bound `entries` by `APIKeyPage.maximumLimit`).
    private func records(_ entries: [(id: String, hash: String)]) -> EventLoopFuture<[APIKeyRecord?]> {
        guard !entries.isEmpty else { return self.eventLoop.makeSucceededFuture([]) }
        let names = entries.flatMap { [self.keys.record(hash: $0.hash), self.keys.lastUsed(id: $0.id)] }
        let values: EventLoopFuture<[RESPValue]>
        if self.keys.isSpread {
            values = EventLoopFuture.whenAllSucceed(names.map { self.client.send(["GET", $0]) }, on: self.eventLoop)
        } else {
            values = self.client.send(["MGET"] + names).flatMapThrowing { reply in
                guard case .array(let values) = reply, values.count == names.count else {
                    throw CredentialStoreError.corrupt("unexpected reply to MGET")
                }
                return values
            }
        }
        return values.map { values in
            stride(from: 0, to: values.count, by: 2).map { Self.record(json: values[$0], used: values[$0 + 1]) }
        }
    }

    package func createAPIKey(_ record: APIKeyRecord, hash: String, maxPerOwner: Int?) -> EventLoopFuture<Void> {
        let json: [UInt8]
        do {
            json = Array(try JSONEncoder().encode(record))
        } catch {
            return self.eventLoop.makeFailedFuture(CredentialStoreError.corrupt("record cannot be encoded"))
        }
        let created: EventLoopFuture<RESPValue>
        if self.keys.isSpread {
            created = self.createSpread(record, json: json, hash: hash, maxPerOwner: maxPerOwner)
        } else {
            // One script, so a refused creation leaves nothing behind, a lost connection
            // cannot leave half a key, and parallel creations cannot both pass the cap.
            created = self.client.evaluate(
                script: Self.createScript,
                keys: [
                    self.keys.hashOf(id: record.id), self.keys.record(hash: hash), self.keys.ids, self.keys.byCreated,
                    self.keys.owned(by: record.owner), self.keys.indexedMarker,
                ],
                arguments: [
                    hash, String(decoding: json, as: UTF8.self), record.id, String(record.createdAt),
                    String(maxPerOwner ?? 0), self.prefix,
                ]
            )
        }
        return created.flatMapThrowing { reply in
            switch reply {
            case .integer(1): return
            case .integer(-1): throw CredentialStoreError.limitReached
            default: throw CredentialStoreError.conflict
            }
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    /// On a cluster the record (in its hash's slot) and the indexes (in the `{gw}` slot)
    /// cannot be written by one script. The record is claimed first (`SET NX`: a taken hash
    /// is a conflict and leaves nothing), then one script in the `{gw}` slot checks the id
    /// and the cap and writes the pointer and the indexes (parallel creations still cannot
    /// pass the cap); a refusal there deletes the record again. A connection lost between
    /// the two steps can leave a record no index names: it is unreachable, since the caller
    /// never received the key it belongs to, and harmless. A connection lost after the
    /// script ran leaves a complete key the caller did not receive, as on a single Redis.
    /// Returns the reply codes of `createScript`.
    private func createSpread(
        _ record: APIKeyRecord,
        json: [UInt8],
        hash: String,
        maxPerOwner: Int?
    ) -> EventLoopFuture<RESPValue> {
        let recordKey = self.keys.record(hash: hash)
        return self.client.send([Array("SET".utf8), Array(recordKey.utf8), json, Array("NX".utf8)]).flatMap {
            claimed -> EventLoopFuture<RESPValue> in
            guard case .simpleString = claimed else { return self.eventLoop.makeSucceededFuture(.integer(0)) }
            return self.client.evaluate(
                script: Self.indexScript,
                keys: [
                    self.keys.hashOf(id: record.id), self.keys.ids, self.keys.byCreated,
                    self.keys.owned(by: record.owner), self.keys.indexedMarker,
                ],
                arguments: [hash, record.id, String(record.createdAt), String(maxPerOwner ?? 0)]
            ).flatMap { indexed -> EventLoopFuture<RESPValue> in
                guard indexed != .integer(1) else { return self.eventLoop.makeSucceededFuture(indexed) }
                // Refused: the record claimed above is ours alone (`NX`) and goes again. The
                // refusal is the answer even if the delete fails (the record is unreachable).
                return self.client.send(["DEL", recordKey]).map { _ in indexed }.recover { _ in indexed }
            }
        }
    }

    /// Built once (static lets): the client finds a script's SHA by comparing the very
    /// same string.
    ///
    /// `ensureIndexed(idSet, allIndex, marker, prefix)`: adds keys the indexes do not
    /// account for (written before they existed, or by an older gateway during a rolling
    /// upgrade). The marker holds the id count the indexes account for; creations keep it
    /// in step, so a pass over the id set (inside Redis) runs only after such writes. The
    /// pass reads the records, so it exists only in the one-slot layout: on a cluster the
    /// records live in other slots, where no script of the `{gw}` slot may read, and no key
    /// predates the indexes (every creation writes them, in step with the marker).
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

    /// One-slot layout. KEYS: id key, record key, id set, all-keys index, owner index,
    /// indexed marker. ARGV: hash, record JSON, id, created at, cap (0: none), key prefix.
    /// Returns 1; 0 if the id or the hash is taken; -1 if the owner is at the cap.
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

    /// Spread layout, after the record was claimed. KEYS: id key, id set, all-keys index,
    /// owner index, indexed marker (all in the `{gw}` slot). ARGV: hash, id, created at, cap
    /// (0: none). Returns 1; 0 if the id is taken; -1 if the owner is at the cap.
    private static let indexScript = """
        if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
        local cap = tonumber(ARGV[4])
        if cap > 0 and redis.call('ZCARD', KEYS[4]) >= cap then return -1 end
        redis.call('SET', KEYS[1], ARGV[1])
        if redis.call('SADD', KEYS[2], ARGV[2]) == 1 then redis.call('INCR', KEYS[5]) end
        redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
        redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])
        return 1
        """

    package func listAPIKeys(owner: String?, offset: Int, limit: Int) -> EventLoopFuture<APIKeyPage> {
        let limit = max(1, min(limit, APIKeyPage.maximumLimit))
        let offset = max(0, offset)
        let index = owner.map(self.keys.owned(by:)) ?? self.keys.byCreated
        return self.client.evaluate(
            script: Self.pageScript,
            keys: [index, self.keys.ids, self.keys.byCreated, self.keys.indexedMarker],
            arguments: [String(offset), String(offset + limit), self.prefix, self.keys.isSpread ? "0" : "1"]
        ).flatMap { reply -> EventLoopFuture<APIKeyPage> in
            guard case .array(let values) = reply, values.count % 2 == 1, case .integer(let more) = values[0],
                values.count / 2 <= limit
            else {
                return self.eventLoop.makeFailedFuture(
                    CredentialStoreError.corrupt("unexpected reply to the page script")
                )
            }
            var entries: [(id: String, hash: String)] = []
            for index in stride(from: 1, to: values.count, by: 2) {
                guard case .bulkString(let id) = values[index], let hash = Self.storedHash(values[index + 1]) else {
                    continue
                }
                entries.append((String(decoding: id, as: UTF8.self), hash))
            }
            return self.records(entries).map { records in
                APIKeyPage(records: records.compactMap { $0 }, nextOffset: more == 1 ? offset + limit : nil)
            }
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    /// KEYS: the index to page through, id set, all-keys index, indexed marker. ARGV:
    /// first rank, last rank (one past the page, to learn whether more follow), prefix,
    /// `1` to index keys the indexes miss first (one-slot layout only). Returns {more, id1,
    /// hash1, id2, hash2, ...}; a missing hash is nil. The records are read afterwards, as
    /// on a cluster they live in other slots.
    private static let pageScript =
        indexFunction + """
            if ARGV[4] == '1' then ensureIndexed(KEYS[2], KEYS[3], KEYS[4], ARGV[3]) end
            local ids = redis.call('ZREVRANGE', KEYS[1], ARGV[1], ARGV[2])
            local pageSize = tonumber(ARGV[2]) - tonumber(ARGV[1])
            local out = {0}
            if #ids > pageSize then out[1] = 1 end
            for i = 1, math.min(#ids, pageSize) do
              out[#out + 1] = ids[i]
              out[#out + 1] = redis.call('GET', ARGV[3] .. 'apikey-id:' .. ids[i])
            end
            return out
            """

    /// A record from its JSON and last use; nil if the record is missing or does not
    /// decode.
    private static func record(json: RESPValue, used: RESPValue) -> APIKeyRecord? {
        guard case .bulkString(let json) = json, var record = try? Self.decode(APIKeyRecord.self, json) else {
            return nil
        }
        if case .bulkString(let used) = used, used.count <= 20, let time = Int64(String(decoding: used, as: UTF8.self))
        {
            record.lastUsedAt = time
        }
        return record
    }

    package func listAPIKeys() -> EventLoopFuture<[APIKeyRecord]> {
        self.allPages(from: 0, collected: [])
    }

    /// The whole index a page at a time: one bounded script and one bounded read per page,
    /// never one command per key queued at once.
    private func allPages(from offset: Int, collected: [APIKeyRecord]) -> EventLoopFuture<[APIKeyRecord]> {
        self.listAPIKeys(owner: nil, offset: offset, limit: APIKeyPage.maximumLimit).flatMap { page in
            let records = collected + page.records
            guard let next = page.nextOffset else { return self.eventLoop.makeSucceededFuture(records) }
            return self.allPages(from: next, collected: records)
        }
    }

    package func revokeAPIKey(id: String) -> EventLoopFuture<APIKeyRecord?> {
        self.client.send(["GET", self.keys.hashOf(id: id)]).flatMap { reply -> EventLoopFuture<APIKeyRecord?> in
            guard let hash = Self.storedHash(reply) else { return self.eventLoop.makeSucceededFuture(nil) }
            let recordKey = self.keys.record(hash: hash)
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
                    self.client.send(["ZREM", self.keys.owned(by: revoked.owner), revoked.id])
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
        self.client.send(["SET", self.keys.lastUsed(id: id), String(time)]).map { _ in }
            .flatMapErrorThrowing { throw Self.mapped($0) }
    }
}
