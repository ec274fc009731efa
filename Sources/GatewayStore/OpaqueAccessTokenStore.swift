import Foundation
import GatewayCore
package import GatewayRedis
package import NIOCore

/// What the gateway knows about one opaque OAuth access token (`dbaudit_at_…`). The token
/// itself is never stored: only its SHA-256, which is the record's address (a 256-bit random
/// token needs no pepper). Immutable value; any thread.
package struct OpaqueAccessTokenRecord: Codable, Sendable, Hashable {
    package var clientID: String
    /// The user's id (authorization code) or `client:<client id>` (client credentials).
    package var subject: String
    package var scopes: [String]
    /// Unique per token, like a JWT's `jti` (logs, introspection).
    package var tokenID: String
    /// Unix seconds.
    package var issuedAt: Int64
    /// Unix seconds; the Redis key expires then too.
    package var expiresAt: Int64

    package init(
        clientID: String,
        subject: String,
        scopes: [String],
        tokenID: String,
        issuedAt: Int64,
        expiresAt: Int64
    ) {
        self.clientID = clientID
        self.subject = subject
        self.scopes = scopes
        self.tokenID = tokenID
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
    }

    enum CodingKeys: String, CodingKey {
        case subject, scopes
        case clientID = "client_id"
        case tokenID = "token_id"
        case issuedAt = "issued_at"
        case expiresAt = "expires_at"
    }

    /// Redis is hostile until parsed: a record whose identifiers are empty or oversized, or
    /// whose scopes are not scope tokens, is not one the gateway wrote and does not decode.
    package init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func text(_ key: CodingKeys) throws -> String {
            let value = try container.decode(String.self, forKey: key)
            guard !value.isEmpty, value.utf8.count <= 256 else {
                throw DecodingError.dataCorruptedError(
                    forKey: key,
                    in: container,
                    debugDescription: "empty or longer than 256 bytes"
                )
            }
            return value
        }
        self.clientID = try text(.clientID)
        self.subject = try text(.subject)
        self.tokenID = try text(.tokenID)
        self.scopes = try container.decode([String].self, forKey: .scopes)
        guard self.scopes.count <= 256, ScopeToken.areValid(self.scopes) else {
            throw DecodingError.dataCorruptedError(
                forKey: .scopes,
                in: container,
                debugDescription: "not all scope tokens"
            )
        }
        self.issuedAt = try container.decode(Int64.self, forKey: .issuedAt)
        self.expiresAt = try container.decode(Int64.self, forKey: .expiresAt)
    }

    /// Whether the token may authenticate at `now` (unix seconds).
    package func isUsable(at now: Int64) -> Bool { now < self.expiresAt }
}

/// Opaque OAuth access tokens: written by the token endpoint, read on the request path,
/// deleted by revocation. Implementations are bound to one event loop (the Redis one wraps
/// that loop's connection) and complete every future there. Errors as `CredentialStore`:
/// `CredentialStoreError.unavailable` when the store cannot be asked (the caller answers 503,
/// never 401); a record that does not decode is `.corrupt` (the caller treats it as absent).
package protocol OpaqueAccessTokenStore: Sendable {
    /// Stores `record` under `hash` (lowercase hex SHA-256 of the token) until its expiry.
    /// Fails with `.conflict` if the hash is already taken.
    func storeOpaqueAccessToken(hash: String, record: OpaqueAccessTokenRecord, now: Int64) -> EventLoopFuture<Void>
    /// The record stored under `hash`, or nil (unknown, expired or revoked).
    func opaqueAccessToken(hash: String) -> EventLoopFuture<OpaqueAccessTokenRecord?>
    /// Deletes it and publishes `revoke oauth-at <hash>` on `P events`; true if it existed.
    func revokeOpaqueAccessToken(hash: String) -> EventLoopFuture<Bool>
}

extension RevocationMessage {
    /// `revoke oauth-at <hash>` on the wire.
    package static func encode(opaqueAccessTokenHash hash: String) -> String {
        "revoke oauth-at \(hash)"
    }

    /// The opaque access token hash named by `message`, or nil if it is not a well-formed
    /// revocation of one.
    package static func opaqueAccessTokenHash(from message: String) -> String? {
        let parts = message.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "revoke", parts[1] == "oauth-at", Self.isHashHex(parts[2]) else {
            return nil
        }
        return String(parts[2])
    }

    /// 64 lowercase hex digits: the only shape a hash in a message may have.
    static func isHashHex(_ text: Substring) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }
}

/// `OpaqueAccessTokenStore` on Redis, over one event loop's `RedisClient`.
///
/// Layout under the key prefix `P`:
/// - `P oauth-at:<hash>` — the record as JSON; expires with the token
/// - channel `P events` — `revoke oauth-at <hash>` on revocation
/// Touched only on its event loop; it holds no mutable state, and every callback runs on the
/// client's loop (the client preconditions it), which makes the `@unchecked Sendable` sound.
package final class RedisOpaqueAccessTokenStore: OpaqueAccessTokenStore, @unchecked Sendable {
    /// The largest record read back; anything bigger was not written by the gateway.
    static let maximumRecordBytes = 16 * 1024

    private let client: RedisClient
    private let prefix: String

    package init(client: RedisClient, keyPrefix: String) {
        self.client = client
        self.prefix = keyPrefix
    }

    package var eventLoop: any EventLoop { self.client.eventLoop }

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
        self.client.send(["GET", Self.key(hash: hash, keyPrefix: self.prefix)]).flatMapThrowing { reply in
            switch reply {
            case .null:
                return nil
            case .bulkString(let bytes):
                guard bytes.count <= Self.maximumRecordBytes,
                    let record = try? JSONDecoder().decode(OpaqueAccessTokenRecord.self, from: Data(bytes))
                else { throw CredentialStoreError.corrupt("stored opaque access token is not valid") }
                return record
            default:
                throw CredentialStoreError.corrupt("unexpected reply to GET")
            }
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    /// KEYS: the record key. ARGV: channel, message. Returns how many keys were deleted. One
    /// script: the deletion and its announcement are never separated by a lost connection.
    /// Published even when the key was already gone, so a cache that missed an earlier
    /// message drops the token now.
    private static let revokeScript = """
        local deleted = redis.call('DEL', KEYS[1])
        redis.call('PUBLISH', ARGV[1], ARGV[2])
        return deleted
        """

    package func revokeOpaqueAccessToken(hash: String) -> EventLoopFuture<Bool> {
        self.client.evaluate(
            script: Self.revokeScript,
            keys: [Self.key(hash: hash, keyPrefix: self.prefix)],
            arguments: [
                RedisCredentialStore.eventsChannel(keyPrefix: self.prefix),
                RevocationMessage.encode(opaqueAccessTokenHash: hash),
            ]
        ).flatMapThrowing { reply in
            guard case .integer(let deleted) = reply else {
                throw CredentialStoreError.corrupt("unexpected reply to the revocation script")
            }
            return deleted == 1
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    private static func mapped(_ error: any Error) -> any Error {
        if error is CredentialStoreError { return error }
        return CredentialStoreError.unavailable
    }
}
