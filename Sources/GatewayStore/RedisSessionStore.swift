import Foundation
import GatewayRedis
package import NIOCore

/// `SessionStore` on Redis. Layout under the prefix `P`:
/// - `P user:<email>` — the user as JSON
/// - `P user-id:<id>` — the e-mail of user `id`, to find a session's account (written with
///   the user; users created before it existed get it on their next login or refresh)
/// - `P refresh:<hash>` — `{state, grant}`: state `live` or `spent`; TTL = grant expiry
/// - `P refresh-family:<family>` — `revoked` once reuse or logout revoked the family; TTL
///   = the longest expiry of its tokens plus 25 h. The family is also the session id
///   (`sid`) of the access tokens issued under it, so this key is their session deny list
/// - `P user-revoked-upto:<user id>` — a Unix time: the user's access tokens issued at or
///   before it are refused (`users disable`); TTL 25 h (the longest access token's life)
/// - `P refresh-grace:<hash>` — for `refresh_reuse_grace` after `<hash>` was rotated: the
///   successor's hash, then a space and the base64 of the sealed answer once it is known
/// - `P jti:<id>` — present while the JWT id is revoked; TTL = the token's remaining life
/// - channel `P events` — `revoke jti <exp> <id>`, `revoke session <exp> <family>`,
///   `revoke user <exp> <iat> <user id>`
/// Touched only on its event loop (futures complete there).
package final class RedisSessionStore: RedisStore, SessionStore, @unchecked Sendable {
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
    /// Returns {1, grant} rotated, {2, family} reused (family revoked), {0} invalid, {3, successor
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
            redis.call('SET', familyKey, 'revoked', 'EX', math.max(ttl, 1) + 90000)
            return {2, grant['family']}
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
            case 2:
                // Every access token of the family dies too, on every instance.
                if items.count == 2, case .bulkString(let family) = items[1] {
                    self.publishSessionRevocation(String(decoding: family, as: UTF8.self), now: now)
                }
                return .reused
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

    /// KEYS: token key. ARGV: family key prefix. The family revoked, or 0 if the token is
    /// unknown.
    private static let revokeFamilyScript = """
        local raw = redis.call('GET', KEYS[1])
        if not raw then return 0 end
        local grant = cjson.decode(string.sub(raw, 6))
        redis.call('SET', ARGV[1] .. grant['family'], 'revoked', 'EX', 86400 * 400)
        redis.call('DEL', KEYS[1])
        return grant['family']
        """

    package func revokeRefreshFamily(tokenHash: String, now: Int64) -> EventLoopFuture<Bool> {
        self.client.evaluate(
            script: Self.revokeFamilyScript,
            keys: ["\(self.prefix)refresh:\(tokenHash)"],
            arguments: ["\(self.prefix)refresh-family:"]
        ).flatMap { reply -> EventLoopFuture<Bool> in
            switch reply {
            case .integer(0):
                return self.eventLoop.makeSucceededFuture(false)
            case .bulkString(let family):
                // Waited for: logout answers only once every instance was told.
                return self.publish(
                    RevocationMessage.encode(
                        sessionID: String(decoding: family, as: UTF8.self),
                        until: now + AccessTokenDenial.retentionSeconds
                    )
                ).map { true }
            default:
                return self.eventLoop.makeFailedFuture(CredentialStoreError.corrupt("unexpected reply"))
            }
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    package func revokeSession(_ sessionID: String, now: Int64) -> EventLoopFuture<Void> {
        // As long as a logout by refresh token keeps it: the family may still hold tokens.
        self.client.send(["SET", "\(self.prefix)refresh-family:\(sessionID)", "revoked", "EX", String(86400 * 400)])
            .flatMap { _ in
                self.publish(
                    RevocationMessage.encode(sessionID: sessionID, until: now + AccessTokenDenial.retentionSeconds)
                )
            }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    /// KEYS: the user's marker. ARGV: time, TTL. Keeps the later of the stored and the new
    /// time, so a slower `users disable` never shortens a later one.
    private static let revokeUserScript = """
        local current = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
        local upto = math.max(current, tonumber(ARGV[1]))
        redis.call('SET', KEYS[1], tostring(upto), 'EX', ARGV[2])
        return 1
        """

    package func revokeUserTokens(userID: String, issuedUpTo: Int64, now: Int64) -> EventLoopFuture<Void> {
        let retention = AccessTokenDenial.retentionSeconds
        return self.client.evaluate(
            script: Self.revokeUserScript,
            keys: ["\(self.prefix)user-revoked-upto:\(userID)"],
            arguments: [String(issuedUpTo), String(retention)]
        ).flatMap { _ in
            self.publish(RevocationMessage.encode(userID: userID, issuedUpTo: issuedUpTo, until: now + retention))
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    /// Tells every instance (the revocation channel).
    private func publish(_ message: String) -> EventLoopFuture<Void> {
        self.client.publish(channel: RedisCredentialStore.eventsChannel(keyPrefix: self.prefix), message: message)
            .map { _ in }
    }

    /// A session revoked inside a script (reuse): told to every instance, not waited for
    /// (the store already refuses the session; this only reaches the loops' caches sooner).
    private func publishSessionRevocation(_ family: String, now: Int64) {
        _ = self.publish(RevocationMessage.encode(sessionID: family, until: now + AccessTokenDenial.retentionSeconds))
    }

    package func revokeTokenID(_ jti: String, expiresAt: Int64, now: Int64) -> EventLoopFuture<Void> {
        // Past exp by more than the largest leeway a verifier may allow (10 minutes).
        let ttl = max(1, expiresAt - now + 900)
        let channel = RedisCredentialStore.eventsChannel(keyPrefix: self.prefix)
        let message = RevocationMessage.encode(tokenID: jti, expiresAt: expiresAt)
        return self.client.send(["SET", "\(self.prefix)jti:\(jti)", "1", "EX", String(ttl)]).flatMap { _ in
            self.client.publish(channel: channel, message: message)
        }.map { _ in () }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    package func accessTokenDenial(
        tokenID: String?,
        sessionID: String?,
        userID: String?
    ) -> EventLoopFuture<AccessTokenDenial> {
        // Sent together: pipelined on this loop's connection, one round trip (three keys
        // that may live on three cluster slots, so not one multi-key command).
        let tokenIDRevoked = tokenID.map { self.exists("\(self.prefix)jti:\($0)") }
        let sessionRevoked = sessionID.map { self.exists("\(self.prefix)refresh-family:\($0)") }
        let userRevoked = userID.map { id in
            self.client.send(["GET", "\(self.prefix)user-revoked-upto:\(id)"]).flatMapThrowing { reply -> Int64? in
                switch reply {
                case .null: return nil
                case .bulkString(let bytes) where bytes.count <= 20:
                    guard let time = Int64(String(decoding: bytes, as: UTF8.self)) else {
                        throw CredentialStoreError.corrupt("user-revoked-upto is not a time")
                    }
                    return time
                default: throw CredentialStoreError.corrupt("unexpected reply to GET")
                }
            }
        }
        let no = self.eventLoop.makeSucceededFuture(false)
        return (tokenIDRevoked ?? no).and(sessionRevoked ?? no).and(
            userRevoked ?? self.eventLoop.makeSucceededFuture(nil)
        ).map { pair, upTo in
            AccessTokenDenial(tokenIDRevoked: pair.0, sessionRevoked: pair.1, userRevokedUpTo: upTo)
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    private func exists(_ key: String) -> EventLoopFuture<Bool> {
        self.client.send(["EXISTS", key]).flatMapThrowing { reply in
            guard case .integer(let value) = reply else {
                throw CredentialStoreError.corrupt("unexpected reply to EXISTS")
            }
            return value == 1
        }
    }

    package func replacePasswordHash(email: String, expectedHash: String, newHash: String) -> EventLoopFuture<Bool> {
        let key = "\(self.prefix)user:\(email)"
        return self.client.send(["GET", key]).flatMap { reply -> EventLoopFuture<Bool> in
            guard case .bulkString(let bytes) = reply, var user = try? Self.decode(UserRecord.self, bytes),
                user.passwordHash == expectedHash
            else {
                return self.eventLoop.makeSucceededFuture(false)
            }
            user.passwordHash = newHash
            guard let json = Self.encode(user) else {
                return self.eventLoop.makeFailedFuture(CredentialStoreError.corrupt("encode"))
            }
            // Written only over the very record read: a password change, a disable or any
            // other update made meanwhile wins, and this rehash is simply dropped.
            return self.client.evaluate(
                script: Self.compareAndSetScript,
                keys: [key],
                arguments: [String(decoding: bytes, as: UTF8.self), json]
            ).map { reply in
                if case .integer(1) = reply { return true }
                return false
            }
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }

    package func isTokenIDRevoked(_ jti: String) -> EventLoopFuture<Bool> {
        self.client.send(["EXISTS", "\(self.prefix)jti:\(jti)"]).flatMapThrowing { reply in
            guard case .integer(let value) = reply else {
                throw CredentialStoreError.corrupt("unexpected reply to EXISTS")
            }
            return value == 1
        }.flatMapErrorThrowing { throw Self.mapped($0) }
    }
}
