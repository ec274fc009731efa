import Foundation
package import GatewayRedis
import NIOConcurrencyHelpers
package import NIOCore

/// A person who may log in (`users add`). The password is kept only as a scrypt hash in
/// the PHC-like form `scrypt$ln=15,r=8,p=1$<salt b64>$<hash b64>`. Stored as JSON.
package struct UserRecord: Codable, Sendable, Hashable {
    package var id: String
    /// Lower-cased e-mail address, the login name.
    package var email: String
    package var scopes: [String]
    package var passwordHash: String
    package var disabled: Bool
    package var createdAt: Int64
    /// The `[[sso.providers]]` name for a user created at sign-in through a provider; nil
    /// for a password user. Such a user's `email` is its key (see `SSOUserKey`), never a
    /// password login, and `passwordHash` holds no hash.
    package var provider: String?
    /// The address the provider vouched for at the last sign-in (provider users only).
    package var contactEmail: String?

    package init(
        id: String,
        email: String,
        scopes: [String],
        passwordHash: String,
        disabled: Bool = false,
        createdAt: Int64
    ) {
        self.id = id
        self.email = email
        self.scopes = scopes
        self.passwordHash = passwordHash
        self.disabled = disabled
        self.createdAt = createdAt
    }

    /// What pages show as the user's address: the provider's e-mail, else the login name.
    package var displayEmail: String { self.contactEmail ?? self.email }

    enum CodingKeys: String, CodingKey {
        case id, email, scopes, disabled, provider
        case contactEmail = "contact_email"
        case passwordHash = "password_hash"
        case createdAt = "created_at"
    }
}

/// What a refresh token grants; stored under the hash of the token, never the token.
package struct RefreshGrant: Codable, Sendable, Hashable {
    /// Every token minted by rotation from one login shares the family; reuse of a rotated
    /// token revokes the whole family (OAuth 2.0 Security BCP §4.14).
    package var family: String
    package var userID: String
    package var subject: String
    package var scopes: [String]
    package var expiresAt: Int64
    package var clientID: String?

    package init(
        family: String,
        userID: String,
        subject: String,
        scopes: [String],
        expiresAt: Int64,
        clientID: String? = nil
    ) {
        self.family = family
        self.userID = userID
        self.subject = subject
        self.scopes = scopes
        self.expiresAt = expiresAt
        self.clientID = clientID
    }

    enum CodingKeys: String, CodingKey {
        case family, subject, scopes
        case userID = "user_id"
        case expiresAt = "expires_at"
        case clientID = "client_id"
    }
}

/// A refresh grant as found, and whether its token is current (`live`) or already rotated.
package struct RefreshGrantState: Sendable, Hashable {
    package var grant: RefreshGrant
    package var isLive: Bool

    package init(grant: RefreshGrant, isLive: Bool) {
        self.grant = grant
        self.isLive = isLive
    }
}

/// The result of presenting a refresh token.
package enum RefreshRotation: Sendable, Equatable {
    /// The token was current: it is now spent and `newTokenHash` holds the grant.
    case rotated(RefreshGrant)
    /// The token had already been rotated: the family is now revoked.
    case reused
    /// The token was rotated less than the retry grace ago and its successor is unused:
    /// `sealedResult` is the answer the rotation gave (sealed by the endpoint), or nil
    /// while that rotation is still being answered.
    case retried(successorHash: String, sealedResult: [UInt8]?)
    /// Unknown, expired or of a revoked family.
    case invalid
}

/// Users, refresh-token families and revoked JWT ids. One instance per event loop; every
/// future completes on that loop. `RedisSessionStore` is shared by every gateway instance;
/// `InMemorySessionStore` serves one process (demo, tests). Errors as `CredentialStore`:
/// `CredentialStoreError.unavailable` when the store cannot be asked.
package protocol SessionStore: AnyObject {
    var eventLoop: any EventLoop { get }

    func user(email: String) -> EventLoopFuture<UserRecord?>
    /// The user whose id is `id`, or nil (unknown, or created before the id index and not
    /// logged in since: such a session must log in again).
    func user(id: String) -> EventLoopFuture<UserRecord?>
    /// Fails with `.conflict` if the e-mail is taken.
    func createUser(_ user: UserRecord) -> EventLoopFuture<Void>
    /// Returns the updated user, or nil if unknown.
    func setUserDisabled(email: String, disabled: Bool) -> EventLoopFuture<UserRecord?>
    /// Replaces the record of a provider user (same key and id) with `user` in one step,
    /// unless it is disabled meanwhile: returns what is stored afterwards (the old record
    /// if disabled or of another id), nil if there is none.
    func updateProviderUser(_ user: UserRecord) -> EventLoopFuture<UserRecord?>

    /// Stores a new refresh grant under `tokenHash` (a new family or a rotation result).
    func storeRefresh(tokenHash: String, grant: RefreshGrant, now: Int64) -> EventLoopFuture<Void>
    /// Atomically spends `tokenHash` and stores `newGrant` under `newTokenHash` in the same
    /// family; detects reuse and revokes the family.
    /// With `graceSeconds` > 0, the rotation is remembered that long: presenting the old
    /// token again before the successor is used answers `.retried` instead of revoking.
    /// `clientID`: the OAuth client presenting the token; a grant of another client (or,
    /// for nil, of any client) is `.invalid` and left untouched.
    func rotateRefresh(
        tokenHash: String,
        newTokenHash: String,
        now: Int64,
        graceSeconds: Int64,
        clientID: String?
    ) -> EventLoopFuture<RefreshRotation>
    /// Keeps the (sealed) answer of the rotation of `tokenHash` into `successorHash` for the
    /// rest of its grace, so a retry gets the same answer. Nothing if the grace is over.
    func recordRotationResult(tokenHash: String, successorHash: String, sealedResult: [UInt8]) -> EventLoopFuture<Void>
    /// The grant under `tokenHash` without spending it, and whether the token is still
    /// current (not yet rotated); nil if unknown, expired or of a revoked family.
    func refreshGrant(tokenHash: String, now: Int64) -> EventLoopFuture<RefreshGrantState?>
    /// Revokes the family of `tokenHash` (logout). True if the token was known.
    func revokeRefreshFamily(tokenHash: String) -> EventLoopFuture<Bool>

    /// Denies the JWT id until `expiresAt` and tells every instance.
    func revokeTokenID(_ jti: String, expiresAt: Int64, now: Int64) -> EventLoopFuture<Void>
    func isTokenIDRevoked(_ jti: String) -> EventLoopFuture<Bool>
}

extension SessionStore {
    /// A rotation without retry grace.
    package func rotateRefresh(tokenHash: String, newTokenHash: String, now: Int64) -> EventLoopFuture<RefreshRotation>
    {
        self.rotateRefresh(tokenHash: tokenHash, newTokenHash: newTokenHash, now: now, graceSeconds: 0, clientID: nil)
    }

    package func rotateRefresh(
        tokenHash: String,
        newTokenHash: String,
        now: Int64,
        graceSeconds: Int64
    ) -> EventLoopFuture<RefreshRotation> {
        self.rotateRefresh(
            tokenHash: tokenHash,
            newTokenHash: newTokenHash,
            now: now,
            graceSeconds: graceSeconds,
            clientID: nil
        )
    }
}

extension RevocationMessage {
    /// `revoke jti <exp> <jti>` on the wire (the id last: it may be any printable text).
    package static func encode(tokenID: String, expiresAt: Int64) -> String {
        "revoke jti \(expiresAt) \(tokenID)"
    }

    package static func tokenID(from message: String) -> (id: String, expiresAt: Int64)? {
        let parts = message.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "revoke", parts[1] == "jti", let exp = Int64(parts[2]),
            !parts[3].isEmpty, parts[3].utf8.count <= 128
        else { return nil }
        return (String(parts[3]), exp)
    }
}

// MARK: - Redis

/// `SessionStore` on Redis. Layout under the prefix `P`:
/// - `P user:<email>` — the user as JSON
/// - `P user-id:<id>` — the e-mail of user `id`, to find a session's account (written with
///   the user; users created before it existed get it on their next login or refresh)
/// - `P refresh:<hash>` — `{state, grant}`: state `live` or `spent`; TTL = grant expiry
/// - `P refresh-family:<family>` — `revoked` once reuse or logout revoked the family; TTL
///   = the longest expiry of its tokens
/// - `P refresh-grace:<hash>` — for `refresh_reuse_grace` after `<hash>` was rotated: the
///   successor's hash, then a space and the base64 of the sealed answer once it is known
/// - `P jti:<id>` — present while the JWT id is revoked; TTL = the token's remaining life
/// - channel `P events` — `revoke jti <exp> <id>`
/// Touched only on its event loop (futures complete there).
package final class RedisSessionStore: SessionStore, @unchecked Sendable {
    private let client: RedisClient
    private let prefix: String

    package init(client: RedisClient, keyPrefix: String) {
        self.client = client
        self.prefix = keyPrefix
    }

    package var eventLoop: any EventLoop { self.client.eventLoop }

    package func user(email: String) -> EventLoopFuture<UserRecord?> {
        self.client.send(["GET", "\(self.prefix)user:\(email)"]).flatMapThrowing { reply in
            switch reply {
            case .null: return nil
            case .bulkString(let bytes):
                let user = try Self.decode(UserRecord.self, bytes)
                if user.email == email {
                    // Users created before the id index get their entry here (login and
                    // refresh read them by e-mail); not waited for, and never overwritten.
                    _ = self.client.send(["SET", "\(self.prefix)user-id:\(user.id)", user.email, "NX"])
                }
                return user
            default: throw CredentialStoreError.corrupt("unexpected reply to GET")
            }
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    package func user(id: String) -> EventLoopFuture<UserRecord?> {
        self.client.send(["GET", "\(self.prefix)user-id:\(id)"]).flatMap { reply -> EventLoopFuture<UserRecord?> in
            guard case .bulkString(let bytes) = reply, bytes.count <= 254 else {
                return self.eventLoop.makeSucceededFuture(nil)
            }
            return self.user(email: String(decoding: bytes, as: UTF8.self)).map { user in
                // The index names an e-mail; the record there must still be this user.
                user?.id == id ? user : nil
            }
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    package func createUser(_ user: UserRecord) -> EventLoopFuture<Void> {
        guard let json = Self.encode(user) else {
            return self.eventLoop.makeFailedFuture(CredentialStoreError.corrupt("encode"))
        }
        return self.client.evaluate(
            script: Self.createUserScript,
            keys: ["\(self.prefix)user:\(user.email)", "\(self.prefix)user-id:\(user.id)"],
            arguments: [json, user.email]
        ).flatMapThrowing { reply in
            guard case .integer(1) = reply else { throw CredentialStoreError.conflict }
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    /// KEYS: user key, id index key. ARGV: user JSON, e-mail. 1, or 0 if the e-mail or the
    /// id is taken. One script: a user never exists without its index entry.
    private static let createUserScript = """
        if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
        redis.call('SET', KEYS[1], ARGV[1])
        redis.call('SET', KEYS[2], ARGV[2])
        return 1
        """

    package func setUserDisabled(email: String, disabled: Bool) -> EventLoopFuture<UserRecord?> {
        self.setUserDisabled(email: email, disabled: disabled, attemptsLeft: 5)
    }

    /// Read, change in Swift, then write only if nobody changed the record meanwhile (a
    /// compare-and-set script). The record is never re-encoded by Lua's cjson, which would
    /// turn an empty `scopes` array into an object.
    private func setUserDisabled(email: String, disabled: Bool, attemptsLeft: Int) -> EventLoopFuture<UserRecord?> {
        let key = "\(self.prefix)user:\(email)"
        return self.client.send(["GET", key]).flatMap { reply -> EventLoopFuture<UserRecord?> in
            guard case .bulkString(let bytes) = reply else {
                if case .null = reply { return self.eventLoop.makeSucceededFuture(nil) }
                return self.eventLoop.makeFailedFuture(CredentialStoreError.corrupt("unexpected reply to GET"))
            }
            var user: UserRecord
            do {
                user = try Self.decode(UserRecord.self, bytes)
            } catch {
                return self.eventLoop.makeFailedFuture(error)
            }
            user.disabled = disabled
            guard let json = Self.encode(user) else {
                return self.eventLoop.makeFailedFuture(CredentialStoreError.corrupt("encode"))
            }
            let old = String(decoding: bytes, as: UTF8.self)
            let updated = user
            return self.client.evaluate(script: Self.compareAndSetScript, keys: [key], arguments: [old, json]).flatMap {
                reply in
                if case .integer(1) = reply { return self.eventLoop.makeSucceededFuture(updated) }
                guard attemptsLeft > 1 else {
                    return self.eventLoop.makeFailedFuture(CredentialStoreError.conflict)
                }
                return self.setUserDisabled(email: email, disabled: disabled, attemptsLeft: attemptsLeft - 1)
            }
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    package func updateProviderUser(_ user: UserRecord) -> EventLoopFuture<UserRecord?> {
        guard let json = Self.encode(user) else {
            return self.eventLoop.makeFailedFuture(CredentialStoreError.corrupt("encode"))
        }
        return self.client.evaluate(
            script: Self.updateProviderUserScript,
            keys: ["\(self.prefix)user:\(user.email)"],
            arguments: [json, user.id]
        )
        .flatMapThrowing { reply -> UserRecord? in
            switch reply {
            case .null: return nil
            case .bulkString(let bytes): return try Self.decode(UserRecord.self, bytes)
            default: throw CredentialStoreError.corrupt("unexpected reply to the user update")
            }
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    /// KEYS: user key. ARGV: new JSON, user id. The stored record afterwards (nil if none):
    /// a disabled user stays disabled even when its sign-in raced `users disable`.
    private static let updateProviderUserScript = """
        local current = redis.call('GET', KEYS[1])
        if not current then return false end
        local decoded = cjson.decode(current)
        if decoded.id ~= ARGV[2] or decoded.disabled == true then return current end
        redis.call('SET', KEYS[1], ARGV[1])
        return ARGV[1]
        """

    /// KEYS: the key. ARGV: expected value, new value. 1 if written, 0 if it had changed.
    private static let compareAndSetScript = """
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
        redis.call('SET', KEYS[1], ARGV[2])
        return 1
        """

    package func storeRefresh(tokenHash: String, grant: RefreshGrant, now: Int64) -> EventLoopFuture<Void> {
        guard let json = Self.encode(grant) else {
            return self.eventLoop.makeFailedFuture(CredentialStoreError.corrupt("encode"))
        }
        let ttl = max(1, grant.expiresAt - now)
        return self.client.send(["SET", "\(self.prefix)refresh:\(tokenHash)", "live " + json, "EX", String(ttl), "NX"])
            .flatMapThrowing { reply in
                guard case .simpleString = reply else { throw CredentialStoreError.conflict }
            }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    /// KEYS: old token key, new token key, old token's grace key. ARGV: now, family key
    /// prefix, grace seconds, refresh key prefix, new token hash, client id ("" for none).
    /// Returns {1, grant} rotated, {2} reused (family revoked), {0} invalid, {3, successor
    /// hash, sealed answer or ""} a retry inside the grace whose successor is unused.
    private static let rotateScript = """
        local raw = redis.call('GET', KEYS[1])
        if not raw then return {0} end
        local state = string.sub(raw, 1, 4)
        local json = string.sub(raw, 6)
        local grant = cjson.decode(json)
        local familyKey = ARGV[2] .. grant['family']
        local now = tonumber(ARGV[1])
        local ttl = tonumber(grant['expires_at']) - now
        local client = grant['client_id']
        if type(client) ~= 'string' then client = '' end
        if client ~= ARGV[6] then return {0} end
        if redis.call('EXISTS', familyKey) == 1 then return {0} end
        if state == 'spen' then
            local grace = redis.call('GET', KEYS[3])
            if grace then
                local successor = string.sub(grace, 1, 64)
                local next = redis.call('GET', ARGV[4] .. successor)
                if next and string.sub(next, 1, 4) == 'live' then
                    return {3, successor, string.sub(grace, 66)}
                end
            end
            redis.call('SET', familyKey, 'revoked', 'EX', math.max(ttl, 1) + 86400)
            return {2}
        end
        if ttl <= 0 then return {0} end
        redis.call('SET', KEYS[1], 'spen ' .. json, 'KEEPTTL')
        redis.call('SET', KEYS[2], 'live ' .. json, 'EX', ttl)
        local grace = tonumber(ARGV[3])
        if grace > 0 then redis.call('SET', KEYS[3], ARGV[5], 'EX', grace) end
        return {1, json}
        """

    package func rotateRefresh(
        tokenHash: String,
        newTokenHash: String,
        now: Int64,
        graceSeconds: Int64,
        clientID: String?
    ) -> EventLoopFuture<RefreshRotation> {
        self.client.evaluate(
            script: Self.rotateScript,
            keys: [
                "\(self.prefix)refresh:\(tokenHash)", "\(self.prefix)refresh:\(newTokenHash)",
                "\(self.prefix)refresh-grace:\(tokenHash)",
            ],
            arguments: [
                String(now), "\(self.prefix)refresh-family:", String(max(0, graceSeconds)), "\(self.prefix)refresh:",
                newTokenHash, clientID ?? "",
            ]
        ).flatMapThrowing { reply in
            guard case .array(let items) = reply, case .integer(let code)? = items.first else {
                throw CredentialStoreError.corrupt("unexpected reply to the rotation script")
            }
            switch code {
            case 1:
                guard items.count == 2, case .bulkString(let bytes) = items[1] else {
                    throw CredentialStoreError.corrupt("rotation")
                }
                return .rotated(try Self.decode(RefreshGrant.self, bytes))
            case 2: return .reused
            case 3:
                guard items.count == 3, case .bulkString(let successor) = items[1],
                    case .bulkString(let sealed) = items[2]
                else {
                    throw CredentialStoreError.corrupt("rotation")
                }
                let result = sealed.isEmpty ? nil : Base64Bytes.decode(sealed)
                return .retried(successorHash: String(decoding: successor, as: UTF8.self), sealedResult: result)
            default: return .invalid
            }
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    /// KEYS: grace key. ARGV: successor hash, base64 answer. Appends the answer when the
    /// key still names that successor and has none yet.
    private static let recordResultScript = """
        local grace = redis.call('GET', KEYS[1])
        if grace ~= ARGV[1] then return 0 end
        redis.call('SET', KEYS[1], grace .. ' ' .. ARGV[2], 'KEEPTTL')
        return 1
        """

    package func recordRotationResult(
        tokenHash: String,
        successorHash: String,
        sealedResult: [UInt8]
    ) -> EventLoopFuture<Void> {
        self.client.evaluate(
            script: Self.recordResultScript,
            keys: ["\(self.prefix)refresh-grace:\(tokenHash)"],
            arguments: [successorHash, Base64Bytes.encode(sealedResult)]
        ).map { _ in () }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    /// KEYS: token key. ARGV: family key prefix, now. {state, json}, or {} when the token is
    /// unknown, expired or of a revoked family.
    private static let peekScript = """
        local raw = redis.call('GET', KEYS[1])
        if not raw then return {} end
        local json = string.sub(raw, 6)
        local grant = cjson.decode(json)
        if redis.call('EXISTS', ARGV[1] .. grant['family']) == 1 then return {} end
        if tonumber(grant['expires_at']) <= tonumber(ARGV[2]) then return {} end
        return {string.sub(raw, 1, 4), json}
        """

    package func refreshGrant(tokenHash: String, now: Int64) -> EventLoopFuture<RefreshGrantState?> {
        self.client.evaluate(
            script: Self.peekScript,
            keys: ["\(self.prefix)refresh:\(tokenHash)"],
            arguments: ["\(self.prefix)refresh-family:", String(now)]
        ).flatMapThrowing { reply -> RefreshGrantState? in
            guard case .array(let items) = reply else {
                throw CredentialStoreError.corrupt("unexpected reply to the peek script")
            }
            guard items.count == 2, case .bulkString(let state) = items[0], case .bulkString(let json) = items[1] else {
                return nil
            }
            return RefreshGrantState(
                grant: try Self.decode(RefreshGrant.self, json),
                isLive: state == Array("live".utf8)
            )
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    private static let revokeFamilyScript = """
        local raw = redis.call('GET', KEYS[1])
        if not raw then return 0 end
        local grant = cjson.decode(string.sub(raw, 6))
        redis.call('SET', ARGV[1] .. grant['family'], 'revoked', 'EX', 86400 * 400)
        redis.call('DEL', KEYS[1])
        return 1
        """

    package func revokeRefreshFamily(tokenHash: String) -> EventLoopFuture<Bool> {
        self.client.evaluate(
            script: Self.revokeFamilyScript,
            keys: ["\(self.prefix)refresh:\(tokenHash)"],
            arguments: ["\(self.prefix)refresh-family:"]
        ).flatMapThrowing { reply in
            guard case .integer(let value) = reply else { throw CredentialStoreError.corrupt("unexpected reply") }
            return value == 1
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    package func revokeTokenID(_ jti: String, expiresAt: Int64, now: Int64) -> EventLoopFuture<Void> {
        // Past exp by more than the largest leeway a verifier may allow (10 minutes).
        let ttl = max(1, expiresAt - now + 900)
        let channel = RedisCredentialStore.eventsChannel(keyPrefix: self.prefix)
        let message = RevocationMessage.encode(tokenID: jti, expiresAt: expiresAt)
        return self.client.send(["SET", "\(self.prefix)jti:\(jti)", "1", "EX", String(ttl)]).flatMap { _ in
            self.client.send(["PUBLISH", channel, message])
        }.map { _ in () }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    package func isTokenIDRevoked(_ jti: String) -> EventLoopFuture<Bool> {
        self.client.send(["EXISTS", "\(self.prefix)jti:\(jti)"]).flatMapThrowing { reply in
            guard case .integer(let value) = reply else {
                throw CredentialStoreError.corrupt("unexpected reply to EXISTS")
            }
            return value == 1
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    private static func encode(_ value: some Encodable) -> String? {
        (try? JSONEncoder().encode(value)).map { String(decoding: $0, as: UTF8.self) }
    }

    private static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw CredentialStoreError.corrupt("stored \(type) is not valid")
        }
    }

    private static func mapped(_ error: any Error) -> any Error {
        if error is CredentialStoreError { return error }
        return CredentialStoreError.unavailable
    }
}

// MARK: - In memory

/// The process-local session data shared by every loop's `InMemorySessionStore`, behind a
/// lock: demo and single-node use, off the hot path (login, refresh, first sight of a JWT).
package final class InMemorySessionData: Sendable {
    private struct Storage {
        var users: [String: UserRecord] = [:]
        var refresh: [String: (spent: Bool, grant: RefreshGrant)] = [:]
        var revokedFamilies: Set<String> = []
        var revokedTokenIDs: [String: Int64] = [:]
        /// Old token hash -> successor hash, end of grace, sealed answer.
        var grace: [String: (successor: String, until: Int64, sealed: [UInt8]?)] = [:]
    }

    private let storage = NIOLockedValueBox(Storage())
    /// Told about every revoked JWT id, so each loop's verifier refuses it at once.
    private let listeners: NIOLockedValueBox<[@Sendable (String, Int64) -> Void]>

    package init(onRevokeTokenID: (@Sendable (String, Int64) -> Void)? = nil) {
        self.listeners = NIOLockedValueBox(onRevokeTokenID.map { [$0] } ?? [])
    }

    /// Adds `listener` to those told about every later token-id revocation (the server
    /// subscribes its loops once they exist).
    package func subscribe(_ listener: @escaping @Sendable (String, Int64) -> Void) {
        self.listeners.withLockedValue { $0.append(listener) }
    }

    func user(email: String) -> UserRecord? { storage.withLockedValue { $0.users[email] } }

    func user(id: String) -> UserRecord? { storage.withLockedValue { $0.users.values.first { $0.id == id } } }

    func createUser(_ user: UserRecord) -> Bool {
        storage.withLockedValue { storage in
            guard storage.users[user.email] == nil else { return false }
            storage.users[user.email] = user
            return true
        }
    }

    func updateProviderUser(_ user: UserRecord) -> UserRecord? {
        storage.withLockedValue { storage in
            guard let current = storage.users[user.email] else { return nil }
            guard current.id == user.id, !current.disabled else { return current }
            storage.users[user.email] = user
            return user
        }
    }

    func setDisabled(email: String, disabled: Bool) -> UserRecord? {
        storage.withLockedValue { storage in
            storage.users[email]?.disabled = disabled
            return storage.users[email]
        }
    }

    func storeRefresh(_ hash: String, grant: RefreshGrant) -> Bool {
        storage.withLockedValue { storage in
            guard storage.refresh[hash] == nil else { return false }
            storage.refresh[hash] = (false, grant)
            return true
        }
    }

    func rotate(_ hash: String, newHash: String, now: Int64, graceSeconds: Int64, clientID: String?) -> RefreshRotation
    {
        storage.withLockedValue { storage in
            guard let entry = storage.refresh[hash], entry.grant.expiresAt > now || entry.spent else { return .invalid }
            if entry.grant.clientID != clientID { return .invalid }
            if storage.revokedFamilies.contains(entry.grant.family) { return .invalid }
            if entry.spent {
                if let grace = storage.grace[hash], grace.until > now, storage.refresh[grace.successor]?.spent == false
                {
                    return .retried(successorHash: grace.successor, sealedResult: grace.sealed)
                }
                storage.revokedFamilies.insert(entry.grant.family)
                return .reused
            }
            storage.refresh[hash] = (true, entry.grant)
            storage.refresh[newHash] = (false, entry.grant)
            if graceSeconds > 0 {
                storage.grace[hash] = (newHash, now + graceSeconds, nil)
            }
            // Expired spent entries are dropped lazily so the maps stay bounded.
            if storage.refresh.count > 100_000 {
                storage.refresh = storage.refresh.filter { $0.value.grant.expiresAt > now }
            }
            if storage.grace.count > 10_000 {
                storage.grace = storage.grace.filter { $0.value.until > now }
            }
            return .rotated(entry.grant)
        }
    }

    func recordRotationResult(_ hash: String, successor: String, sealed: [UInt8]) {
        storage.withLockedValue { storage in
            guard let grace = storage.grace[hash], grace.successor == successor, grace.sealed == nil else { return }
            storage.grace[hash] = (successor, grace.until, sealed)
        }
    }

    func peek(_ hash: String, now: Int64) -> RefreshGrantState? {
        storage.withLockedValue { storage in
            guard let entry = storage.refresh[hash], entry.grant.expiresAt > now,
                !storage.revokedFamilies.contains(entry.grant.family)
            else {
                return nil
            }
            return RefreshGrantState(grant: entry.grant, isLive: !entry.spent)
        }
    }

    func revokeFamily(_ hash: String) -> Bool {
        storage.withLockedValue { storage in
            guard let entry = storage.refresh.removeValue(forKey: hash) else { return false }
            storage.revokedFamilies.insert(entry.grant.family)
            return true
        }
    }

    func revokeTokenID(_ jti: String, expiresAt: Int64, now: Int64) {
        storage.withLockedValue { storage in
            storage.revokedTokenIDs[jti] = expiresAt
            if storage.revokedTokenIDs.count > 100_000 {
                storage.revokedTokenIDs = storage.revokedTokenIDs.filter { $0.value > now }
            }
        }
        for listener in self.listeners.withLockedValue({ $0 }) { listener(jti, expiresAt) }
    }

    func isRevoked(_ jti: String) -> Bool { storage.withLockedValue { $0.revokedTokenIDs[jti] != nil } }
}

/// `SessionStore` over `InMemorySessionData`; one per event loop.
package final class InMemorySessionStore: SessionStore {
    package let eventLoop: any EventLoop
    private let data: InMemorySessionData

    package init(eventLoop: any EventLoop, data: InMemorySessionData) {
        self.eventLoop = eventLoop
        self.data = data
    }

    package func user(email: String) -> EventLoopFuture<UserRecord?> {
        eventLoop.makeSucceededFuture(data.user(email: email))
    }

    package func user(id: String) -> EventLoopFuture<UserRecord?> {
        eventLoop.makeSucceededFuture(data.user(id: id))
    }

    package func createUser(_ user: UserRecord) -> EventLoopFuture<Void> {
        data.createUser(user)
            ? eventLoop.makeSucceededVoidFuture() : eventLoop.makeFailedFuture(CredentialStoreError.conflict)
    }

    package func setUserDisabled(email: String, disabled: Bool) -> EventLoopFuture<UserRecord?> {
        eventLoop.makeSucceededFuture(data.setDisabled(email: email, disabled: disabled))
    }

    package func updateProviderUser(_ user: UserRecord) -> EventLoopFuture<UserRecord?> {
        eventLoop.makeSucceededFuture(data.updateProviderUser(user))
    }

    package func storeRefresh(tokenHash: String, grant: RefreshGrant, now: Int64) -> EventLoopFuture<Void> {
        data.storeRefresh(tokenHash, grant: grant)
            ? eventLoop.makeSucceededVoidFuture() : eventLoop.makeFailedFuture(CredentialStoreError.conflict)
    }

    package func rotateRefresh(
        tokenHash: String,
        newTokenHash: String,
        now: Int64,
        graceSeconds: Int64,
        clientID: String?
    ) -> EventLoopFuture<RefreshRotation> {
        eventLoop.makeSucceededFuture(
            data.rotate(tokenHash, newHash: newTokenHash, now: now, graceSeconds: graceSeconds, clientID: clientID)
        )
    }

    package func recordRotationResult(
        tokenHash: String,
        successorHash: String,
        sealedResult: [UInt8]
    ) -> EventLoopFuture<Void> {
        data.recordRotationResult(tokenHash, successor: successorHash, sealed: sealedResult)
        return eventLoop.makeSucceededVoidFuture()
    }

    package func refreshGrant(tokenHash: String, now: Int64) -> EventLoopFuture<RefreshGrantState?> {
        eventLoop.makeSucceededFuture(data.peek(tokenHash, now: now))
    }

    package func revokeRefreshFamily(tokenHash: String) -> EventLoopFuture<Bool> {
        eventLoop.makeSucceededFuture(data.revokeFamily(tokenHash))
    }

    package func revokeTokenID(_ jti: String, expiresAt: Int64, now: Int64) -> EventLoopFuture<Void> {
        data.revokeTokenID(jti, expiresAt: expiresAt, now: now)
        return eventLoop.makeSucceededVoidFuture()
    }

    package func isTokenIDRevoked(_ jti: String) -> EventLoopFuture<Bool> {
        eventLoop.makeSucceededFuture(data.isRevoked(jti))
    }
}

/// Standard base64 of stored binary values (the sealed refresh answer). Any thread.
enum Base64Bytes {
    static func encode(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    static func decode(_ text: [UInt8]) -> [UInt8]? {
        guard text.count <= 64 * 1024 else { return nil }
        return Data(base64Encoded: Data(text)).map { Array($0) }
    }
}
