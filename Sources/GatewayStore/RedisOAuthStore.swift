import Foundation
import GatewayRedis
package import NIOCore

/// `OAuthStore` on Redis. Layout under the prefix `P`:
/// - `P oauth-client:<id>` — a CLI-registered client as JSON; `P oauth-clients` — set of ids
/// - `P oauth-code:<sha256 hex of code>` — the code's `AuthorizationCodeRecord` JSON, with
///   the code's TTL; kept `usedCodeGrace` seconds past its expiry once redeemed, so a
///   second redemption is recognised as reuse
/// - `P oauth-code-used:<sha256 hex>` — present once redeemed: `R` (nothing recorded yet),
///   `I <issuance JSON>` (what was issued), or `X` / `X <issuance JSON>` once reused
/// - `P oauth-consent:<user id>:<client id>` — JSON array of the granted scopes, sorted
/// - `P oauth-grant-tokens:<family>` — set of the access tokens issued under a refresh
///   family (`j <exp> <jti>`, `o <hash>`), to revoke with the grant
/// Touched only on its event loop (futures complete there).
package final class RedisOAuthStore: RedisStore, OAuthStore, @unchecked Sendable {
    /// How long a redeemed code is remembered past its expiry to detect reuse.
    package static let usedCodeGrace: Int64 = 600
    override class var serverErrors: ServerErrors { .corruptUnlessTransient }
    /// Written as this store always wrote them (sorted keys, `/` not escaped), so a record
    /// written by this version and one by an older one are the same bytes.
    override class var recordFormatting: JSONEncoder.OutputFormatting { [.sortedKeys, .withoutEscapingSlashes] }

    // MARK: clients

    package func client(id: String) -> EventLoopFuture<OAuthClient?> {
        self.record(at: "\(self.prefix)oauth-client:\(id)", as: OAuthClient.self).map { client in
            client?.id == id ? client : nil
        }
    }

    package func listClients() -> EventLoopFuture<[OAuthClient]> {
        self.client.evaluate(script: Self.listScript, keys: ["\(self.prefix)oauth-clients"], arguments: [self.prefix])
            .flatMapThrowing { reply -> [OAuthClient] in
                guard case .array(let values) = reply else {
                    throw CredentialStoreError.corrupt("unexpected reply to the list script")
                }
                return values.compactMap { value -> OAuthClient? in
                    guard case .bulkString(let bytes) = value else { return nil }
                    return try? Self.decode(OAuthClient.self, bytes)
                }.sorted { $0.id < $1.id }
            }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    /// KEYS: the id set. ARGV: prefix. The JSON of every member that still exists.
    private static let listScript = """
        local out = {}
        for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
          local json = redis.call('GET', ARGV[1] .. 'oauth-client:' .. id)
          if json then out[#out + 1] = json end
        end
        return out
        """

    package func createClient(_ client: OAuthClient) -> EventLoopFuture<Void> {
        guard let json = Self.encode(client) else {
            return self.eventLoop.makeFailedFuture(CredentialStoreError.corrupt("encode"))
        }
        return self.client.evaluate(
            script: Self.createClientScript,
            keys: ["\(self.prefix)oauth-client:\(client.id)", "\(self.prefix)oauth-clients"],
            arguments: [json, client.id]
        ).flatMapThrowing { reply in
            guard case .integer(1) = reply else { throw CredentialStoreError.conflict }
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    /// KEYS: client key, id set. ARGV: JSON, id. 1, or 0 if the id is taken.
    private static let createClientScript = """
        if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
        redis.call('SET', KEYS[1], ARGV[1])
        redis.call('SADD', KEYS[2], ARGV[2])
        return 1
        """

    package func replaceClient(_ client: OAuthClient) -> EventLoopFuture<Bool> {
        guard let json = Self.encode(client) else {
            return self.eventLoop.makeFailedFuture(CredentialStoreError.corrupt("encode"))
        }
        return self.client.send(["SET", "\(self.prefix)oauth-client:\(client.id)", json, "XX"]).map { reply in
            if case .simpleString = reply { return true }
            return false
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    package func removeClient(id: String) -> EventLoopFuture<Bool> {
        self.client.evaluate(
            script: Self.removeClientScript,
            keys: ["\(self.prefix)oauth-client:\(id)", "\(self.prefix)oauth-clients"],
            arguments: [id]
        ).flatMapThrowing { reply in
            guard case .integer(let removed) = reply else { throw CredentialStoreError.corrupt("unexpected reply") }
            return removed == 1
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    /// KEYS: client key, id set. ARGV: id. 1 if the client existed.
    private static let removeClientScript = """
        local existed = redis.call('DEL', KEYS[1])
        redis.call('SREM', KEYS[2], ARGV[1])
        return existed
        """

    // MARK: codes

    package func storeCode(codeHash: String, record: AuthorizationCodeRecord, now: Int64) -> EventLoopFuture<Void> {
        guard let json = Self.encode(record) else {
            return self.eventLoop.makeFailedFuture(CredentialStoreError.corrupt("encode"))
        }
        let ttl = max(1, record.expiresAt - now)
        return self.client.send(["SET", "\(self.prefix)oauth-code:\(codeHash)", json, "EX", String(ttl), "NX"])
            .flatMapThrowing { reply in
                guard case .simpleString = reply else { throw CredentialStoreError.conflict }
            }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    /// KEYS: code key, used marker. ARGV: now, grace seconds.
    /// {1, json}: redeemed now. {2, json, marker}: redeemed before (marker turned to `X`).
    /// {0}: unknown or expired.
    private static let redeemScript = """
        local raw = redis.call('GET', KEYS[1])
        if not raw then return {0} end
        local marker = redis.call('GET', KEYS[2])
        if marker then
          if string.sub(marker, 1, 1) == 'I' then
            redis.call('SET', KEYS[2], 'X ' .. string.sub(marker, 3), 'KEEPTTL')
          elseif marker == 'R' then
            redis.call('SET', KEYS[2], 'X', 'KEEPTTL')
          end
          return {2, raw, marker}
        end
        local ok, record = pcall(cjson.decode, raw)
        if not ok or type(record) ~= 'table' then return {0} end
        local now = tonumber(ARGV[1])
        local expires = tonumber(record['expires_at']) or 0
        if expires <= now then return {0} end
        local keep = expires - now + tonumber(ARGV[2])
        redis.call('SET', KEYS[2], 'R', 'EX', keep)
        redis.call('EXPIRE', KEYS[1], keep)
        return {1, raw}
        """

    package func redeemCode(codeHash: String, now: Int64) -> EventLoopFuture<CodeRedemption> {
        self.client.evaluate(
            script: Self.redeemScript,
            keys: self.codeKeys(codeHash),
            arguments: [String(now), String(Self.usedCodeGrace)]
        ).flatMapThrowing { reply -> CodeRedemption in
            guard case .array(let items) = reply, case .integer(let code)? = items.first else {
                throw CredentialStoreError.corrupt("unexpected reply to the redemption script")
            }
            switch code {
            case 1:
                guard items.count == 2, case .bulkString(let json) = items[1] else {
                    throw CredentialStoreError.corrupt("redemption")
                }
                return .redeemed(try Self.decode(AuthorizationCodeRecord.self, json))
            case 2:
                guard items.count == 3, case .bulkString(let json) = items[1], case .bulkString(let marker) = items[2]
                else {
                    throw CredentialStoreError.corrupt("redemption")
                }
                let record = try Self.decode(AuthorizationCodeRecord.self, json)
                return .reused(record, issued: Self.issuance(fromMarker: marker))
            default:
                return .invalid
            }
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    /// The issuance recorded in a marker (`I <json>` or `X <json>`), if any.
    private static func issuance(fromMarker marker: [UInt8]) -> CodeIssuance? {
        guard marker.count > 2, marker[1] == UInt8(ascii: " ") else { return nil }
        return try? Self.decode(CodeIssuance.self, Array(marker[2...]))
    }

    /// KEYS: used marker. ARGV: issuance JSON. 1 if recorded; 0 if the code was reused (or
    /// is gone), so the caller revokes what it issued.
    private static let recordScript = """
        if redis.call('GET', KEYS[1]) ~= 'R' then return 0 end
        redis.call('SET', KEYS[1], 'I ' .. ARGV[1], 'KEEPTTL')
        return 1
        """

    package func recordIssued(fromCode codeHash: String, issuance: CodeIssuance) -> EventLoopFuture<Bool> {
        guard let json = Self.encode(issuance) else {
            return self.eventLoop.makeFailedFuture(CredentialStoreError.corrupt("encode"))
        }
        return self.client.evaluate(script: Self.recordScript, keys: [self.codeKeys(codeHash)[1]], arguments: [json])
            .flatMapThrowing { reply in
                guard case .integer(let recorded) = reply else {
                    throw CredentialStoreError.corrupt("unexpected reply")
                }
                return recorded == 1
            }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    private func codeKeys(_ codeHash: String) -> [String] {
        ["\(self.prefix)oauth-code:\(codeHash)", "\(self.prefix)oauth-code-used:\(codeHash)"]
    }

    // MARK: access tokens of a grant

    package func recordGrantAccessToken(
        family: String,
        token: GrantAccessToken,
        keepUntil: Int64,
        now: Int64
    ) -> EventLoopFuture<Void> {
        self.client.evaluate(
            script: Self.addTokenScript,
            keys: ["\(self.prefix)oauth-grant-tokens:\(family)"],
            arguments: [token.stored, String(max(1, keepUntil - now))]
        ).map { _ in () }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    /// KEYS: the set. ARGV: member, seconds to keep. The set lives as long as its longest entry.
    private static let addTokenScript = """
        redis.call('SADD', KEYS[1], ARGV[1])
        if redis.call('TTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
        return 1
        """

    package func takeGrantAccessTokens(family: String) -> EventLoopFuture<[GrantAccessToken]> {
        self.client.evaluate(
            script: Self.takeTokensScript,
            keys: ["\(self.prefix)oauth-grant-tokens:\(family)"],
            arguments: []
        )
        .flatMapThrowing { reply -> [GrantAccessToken] in
            guard case .array(let values) = reply else { throw CredentialStoreError.corrupt("unexpected reply") }
            return values.compactMap { value in
                guard case .bulkString(let bytes) = value, bytes.count <= 256 else { return nil }
                return GrantAccessToken(stored: String(decoding: bytes, as: UTF8.self))
            }
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    /// KEYS: the set. Its members (at most 10000), and the set deleted.
    private static let takeTokensScript = """
        local members = redis.call('SRANDMEMBER', KEYS[1], 10000)
        redis.call('DEL', KEYS[1])
        return members
        """

    // MARK: consents

    private func consentKey(userID: String, clientID: String) -> String {
        "\(self.prefix)oauth-consent:\(userID):\(clientID)"
    }

    package func storeConsent(userID: String, clientID: String, scopes: [String]) -> EventLoopFuture<Void> {
        guard let json = Self.encode(Array(Set(scopes)).sorted()) else {
            return self.eventLoop.makeFailedFuture(CredentialStoreError.corrupt("encode"))
        }
        return self.client.send(["SET", self.consentKey(userID: userID, clientID: clientID), json]).map { _ in () }
            .flatMapErrorThrowing { throw Self.mapped($0) }
    }

    package func consent(userID: String, clientID: String) -> EventLoopFuture<[String]?> {
        self.record(at: self.consentKey(userID: userID, clientID: clientID), as: [String].self)
    }

    package func revokeConsent(userID: String, clientID: String) -> EventLoopFuture<Void> {
        self.client.send(["DEL", self.consentKey(userID: userID, clientID: clientID)]).map { _ in () }
            .flatMapErrorThrowing { throw Self.mapped($0) }
    }
}
