import Foundation
import GatewayAuth
import GatewayConfig
import GatewayCore
import GatewayCrypto
import GatewayRedis
import GatewayStore
import NIOCore
import NIOPosix

/// User administration for the CLI (`dbaudit-gateway users add|disable`) against the
/// Redis store a configuration names. One-thread event loop per command; scrypt runs on
/// the caller's thread (the CLI), never on that loop.
final class UserManagement: Sendable {
    enum Failure: Error, CustomStringConvertible {
        case noRedis
        case invalid(String)
        case exists
        case unknown
        case storeUnavailable

        var description: String {
            switch self {
            case .noRedis: "users are kept in Redis: configure [redis]"
            case .invalid(let message): message
            case .exists: "a user with this e-mail address already exists"
            case .unknown: "no user has this e-mail address"
            case .storeUnavailable: ManagementConnection.unreachable
            }
        }
    }

    private let group: MultiThreadedEventLoopGroup
    private let settings: RedisSettings
    private let cost: Int

    init(configuration: GatewayConfiguration) throws(Failure) {
        guard let redis = configuration.redis else { throw .noRedis }
        self.settings = redis
        self.cost = configuration.jwt.passwordHashCost
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    func shutdown() async {
        try? await self.group.shutdownGracefully()
    }

    /// Validates and normalises an e-mail address for a new user: lower case, one `@`, a
    /// dot-atom local part (RFC 5322 `atext` and single inner dots, at most 64 bytes) and a
    /// host name of at least two labels (letters, digits, inner hyphens). ASCII only: the
    /// address is a login name and is echoed in JSON and logs, so quoted local parts,
    /// commas, brackets and control or Unicode characters are refused rather than carried.
    static func normalisedEmail(_ text: String) -> String? {
        let email = text.trimmingCharacters(in: .whitespaces).lowercased()
        let parts = email.utf8.split(separator: UInt8(ascii: "@"), omittingEmptySubsequences: false)
        guard email.utf8.count <= 254, parts.count == 2 else { return nil }
        let local = parts[0]
        let domain = parts[1]
        guard (1...64).contains(local.count), local.first != UInt8(ascii: "."), local.last != UInt8(ascii: ".") else {
            return nil
        }
        var previous: UInt8 = 0
        for byte in local {
            guard Self.isAtext(byte) || (byte == UInt8(ascii: ".") && previous != byte) else { return nil }
            previous = byte
        }
        let labels = domain.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard labels.count >= 2, domain.count <= 253 else { return nil }
        for label in labels {
            guard (1...63).contains(label.count), label.first != UInt8(ascii: "-"), label.last != UInt8(ascii: "-"),
                label.allSatisfy({ Self.isLowerAlphanumeric($0) || $0 == UInt8(ascii: "-") })
            else { return nil }
        }
        return email
    }

    /// The lookup form of an address given to `users disable|enable`: only trimmed and
    /// lower-cased, so that a user created before addresses were checked strictly can still
    /// be disabled.
    static func lookupEmail(_ text: String) -> String? {
        let email = text.trimmingCharacters(in: .whitespaces).lowercased()
        guard !email.isEmpty, email.utf8.count <= 254 else { return nil }
        return email
    }

    private static func isLowerAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    /// RFC 5322 `atext` (upper case letters were lowered before).
    private static func isAtext(_ byte: UInt8) -> Bool {
        Self.isLowerAlphanumeric(byte) || "!#$%&'*+-/=?^_`{|}~".utf8.contains(byte)
    }

    func add(email: String, scopes: [String], password: String, now: Int64) async throws -> UserRecord {
        guard let email = Self.normalisedEmail(email) else {
            throw Failure.invalid("--email must be an e-mail address")
        }
        guard !email.hasSuffix(".sso.invalid") else {
            throw Failure.invalid(
                "--email: addresses in .sso.invalid name users who sign in through a provider ([[sso.providers]])"
            )
        }
        guard !scopes.isEmpty, ScopeToken.areValid(scopes), scopes.allSatisfy({ Scopes.all.contains($0) }) else {
            throw Failure.invalid(
                "--scopes must list known scopes, separated by commas (\(Scopes.all.joined(separator: " ")))"
            )
        }
        guard password.utf8.count >= 12 else { throw Failure.invalid("the password must be at least 12 characters") }
        guard password.utf8.count <= PasswordHasher.maximumPasswordBytes else {
            throw Failure.invalid("the password is too long")
        }
        let hash = try PasswordHasher.hash(password: password, cost: self.cost)
        let user = UserRecord(
            id: "usr_" + Base64URL.encode(SecureRandom.bytes(12)),
            email: email,
            scopes: scopes,
            passwordHash: hash,
            createdAt: now
        )
        try await self.withStore { store in store.createUser(user) }
        return user
    }

    /// Disabling also revokes every access token issued to the user until `now` and every
    /// API key the user created in a session (on every instance, through the revocation
    /// channel) and deletes the user's browser sessions: offboarding must not leave tokens,
    /// keys or signed-in browsers behind. Refresh is refused from then on.
    /// Returns the user and how many keys were revoked.
    func setDisabled(email: String, disabled: Bool, now: Int64) async throws -> (user: UserRecord, revokedKeys: Int) {
        guard let email = Self.lookupEmail(email) else { throw Failure.invalid("--email must be an e-mail address") }
        guard let user = try await self.withStore({ store in store.setUserDisabled(email: email, disabled: disabled) })
        else {
            throw Failure.unknown
        }
        guard disabled else { return (user, 0) }
        let settings = self.settings
        let prefix = settings.storeKeyPrefix
        let owner = user.id
        let revoked: Int
        do {
            revoked = try await ManagementConnection.run(self.settings, on: self.group) { client, loop in
                let keys = RedisCredentialStore(client: client, settings: settings)
                let browsers = RedisBrowserStateStore(client: client, keyPrefix: prefix)
                let sessions = RedisSessionStore(client: client, keyPrefix: prefix)
                // Access tokens first (login and OAuth JWTs alike: their `sub` is the user),
                // then signed-in browsers (each use also re-checks the user), then keys.
                return sessions.revokeUserTokens(userID: owner, issuedUpTo: now, now: now).flatMap {
                    browsers.deleteSessions(userID: owner)
                }.flatMap { _ in
                    Self.revokeAll(of: owner, in: keys, on: loop, revoked: 0)
                }
            }
        } catch {
            throw Failure.storeUnavailable
        }
        return (user, revoked)
    }

    /// Revokes the owner's unrevoked keys a page at a time through the owner's index (a
    /// revoked key leaves it, so every round reads the first page again).
    private static func revokeAll(
        of owner: String,
        in keys: RedisCredentialStore,
        on loop: any EventLoop,
        revoked: Int
    ) -> EventLoopFuture<Int> {
        keys.listAPIKeys(owner: owner, offset: 0, limit: APIKeyPage.maximumLimit).flatMap {
            page -> EventLoopFuture<Int> in
            let live = page.records.filter { !$0.revoked }
            guard !live.isEmpty else { return loop.makeSucceededFuture(revoked) }
            let revocations = live.map { keys.revokeAPIKey(id: $0.id) }
            return EventLoopFuture.whenAllSucceed(revocations, on: loop).flatMap { _ in
                Self.revokeAll(of: owner, in: keys, on: loop, revoked: revoked + live.count)
            }
        }
    }

    /// Every user, sorted by e-mail, read with `SCAN` (never `KEYS`, which would stall a busy
    /// Redis) and `MGET` in batches. Records that do not parse are skipped and counted. On a
    /// cluster every user is in the slot of the stores' hash tag (`dbgw:{gw}:user:...`): the
    /// pattern carries that tag, so the client sends each `SCAN` to the node serving that
    /// slot, and each `MGET` stays in it.
    func list() async throws -> (users: [UserRecord], unreadable: Int) {
        let pattern = Self.globEscaped(self.settings.storeKeyPrefix + "user:") + "*"
        do {
            let (users, unreadable) = try await ManagementConnection.run(self.settings, on: self.group) {
                client,
                loop in
                Self.scanUsers(client: client, pattern: pattern, cursor: "0", found: [], unreadable: 0, on: loop)
            }
            return (users.sorted { $0.email < $1.email }, unreadable)
        } catch {
            throw Failure.storeUnavailable
        }
    }

    private static func scanUsers(
        client: RedisClient,
        pattern: String,
        cursor: String,
        found: [UserRecord],
        unreadable: Int,
        on loop: any EventLoop
    ) -> EventLoopFuture<([UserRecord], Int)> {
        client.send(["SCAN", cursor, "MATCH", pattern, "COUNT", "500"]).assumeIsolated().flatMap {
            reply -> EventLoopFuture<([UserRecord], Int)> in
            guard case .array(let parts) = reply, parts.count == 2, case .bulkString(let next) = parts[0],
                case .array(let names) = parts[1]
            else { return loop.makeFailedFuture(CredentialStoreError.corrupt("unexpected reply to SCAN")) }
            let keys: [[UInt8]] = names.compactMap { if case .bulkString(let key) = $0 { key } else { nil } }
            let values: EventLoopFuture<[RESPValue]> =
                keys.isEmpty
                ? loop.makeSucceededFuture([])
                : client.send([Array("MGET".utf8)] + keys).flatMapThrowing { reply in
                    guard case .array(let values) = reply, values.count == keys.count else {
                        throw CredentialStoreError.corrupt("unexpected reply to MGET")
                    }
                    return values
                }
            return values.assumeIsolated().flatMap { values in
                var found = found
                var unreadable = unreadable
                for case .bulkString(let bytes) in values {
                    if let user = try? JSONDecoder().decode(UserRecord.self, from: Data(bytes)) {
                        found.append(user)
                    } else {
                        unreadable += 1
                    }
                }
                let nextCursor = String(decoding: next, as: UTF8.self)
                guard nextCursor != "0" else { return loop.makeSucceededFuture((found, unreadable)) }
                return Self.scanUsers(
                    client: client,
                    pattern: pattern,
                    cursor: nextCursor,
                    found: found,
                    unreadable: unreadable,
                    on: loop
                )
            }.nonisolated()
        }.nonisolated()
    }

    /// `text` as a literal in a `SCAN MATCH` pattern (the key prefix may hold glob characters).
    static func globEscaped(_ text: String) -> String {
        var out = ""
        for character in text {
            if "*?[]\\^".contains(character) { out.append("\\") }
            out.append(character)
        }
        return out
    }

    private func withStore<T: Sendable>(
        _ body: @escaping @Sendable (any SessionStore) -> EventLoopFuture<T>
    ) async throws -> T {
        let prefix = self.settings.storeKeyPrefix
        do {
            return try await ManagementConnection.run(self.settings, on: self.group) { client, _ in
                body(RedisSessionStore(client: client, keyPrefix: prefix))
            }
        } catch CredentialStoreError.conflict {
            throw Failure.exists
        } catch CredentialStoreError.unavailable {
            throw Failure.storeUnavailable
        }
    }
}
