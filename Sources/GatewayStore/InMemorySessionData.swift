import NIOConcurrencyHelpers

/// The process-local session data shared by every loop's `InMemorySessionStore`, behind a
/// lock: demo and single-node use, off the hot path (login, refresh, first sight of a JWT).
package final class InMemorySessionData: Sendable {
    private struct Storage {
        var users: [String: UserRecord] = [:]
        var refresh: [String: (spent: Bool, grant: RefreshGrant)] = [:]
        var revokedFamilies: Set<String> = []
        var revokedTokenIDs: [String: Int64] = [:]
        /// User id -> tokens issued at or before this time are dead (`users disable`).
        var userRevokedUpTo: [String: Int64] = [:]
        /// Old token hash -> successor hash, end of grace, sealed answer.
        var grace: [String: (successor: String, until: Int64, sealed: [UInt8]?)] = [:]
    }

    private let storage = NIOLockedValueBox(Storage())
    /// Told about every revoked JWT id, session and user, so each loop's verifier refuses
    /// their tokens at once.
    private let listeners: NIOLockedValueBox<[@Sendable (SessionRevocation) -> Void]>

    package init(onRevoke: (@Sendable (SessionRevocation) -> Void)? = nil) {
        self.listeners = NIOLockedValueBox(onRevoke.map { [$0] } ?? [])
    }

    /// Adds `listener` to those told about every later revocation (the server subscribes
    /// its loops once they exist).
    package func subscribe(_ listener: @escaping @Sendable (SessionRevocation) -> Void) {
        self.listeners.withLockedValue { $0.append(listener) }
    }

    private func tell(_ revocation: SessionRevocation) {
        for listener in self.listeners.withLockedValue({ $0 }) { listener(revocation) }
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
        let (rotation, revokedFamily) = self.rotateLocked(
            hash,
            newHash: newHash,
            now: now,
            graceSeconds: graceSeconds,
            clientID: clientID
        )
        if let revokedFamily {
            self.tell(.session(revokedFamily, until: now + AccessTokenDenial.retentionSeconds))
        }
        return rotation
    }

    /// The rotation, and the family it revoked (reuse).
    private func rotateLocked(
        _ hash: String,
        newHash: String,
        now: Int64,
        graceSeconds: Int64,
        clientID: String?
    ) -> (RefreshRotation, String?) {
        storage.withLockedValue { storage -> (RefreshRotation, String?) in
            guard let entry = storage.refresh[hash], entry.grant.expiresAt > now || entry.spent else {
                return (.invalid, nil)
            }
            if entry.grant.clientID != clientID { return (.invalid, nil) }
            if storage.revokedFamilies.contains(entry.grant.family) { return (.invalid, nil) }
            if entry.spent {
                if let grace = storage.grace[hash], grace.until > now, storage.refresh[grace.successor]?.spent == false
                {
                    return (.retried(successorHash: grace.successor, sealedResult: grace.sealed), nil)
                }
                storage.revokedFamilies.insert(entry.grant.family)
                return (.reused, entry.grant.family)
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
            return (.rotated(entry.grant), nil)
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

    func revokeFamily(_ hash: String, now: Int64) -> Bool {
        let family = storage.withLockedValue { storage -> String? in
            guard let entry = storage.refresh.removeValue(forKey: hash) else { return nil }
            storage.revokedFamilies.insert(entry.grant.family)
            return entry.grant.family
        }
        guard let family else { return false }
        self.tell(.session(family, until: now + AccessTokenDenial.retentionSeconds))
        return true
    }

    func revokeSession(_ sessionID: String, now: Int64) {
        _ = storage.withLockedValue { $0.revokedFamilies.insert(sessionID) }
        self.tell(.session(sessionID, until: now + AccessTokenDenial.retentionSeconds))
    }

    func revokeUserTokens(userID: String, issuedUpTo: Int64, now: Int64) {
        storage.withLockedValue { storage in
            storage.userRevokedUpTo[userID] = max(storage.userRevokedUpTo[userID] ?? issuedUpTo, issuedUpTo)
        }
        self.tell(.user(userID, issuedUpTo: issuedUpTo, until: now + AccessTokenDenial.retentionSeconds))
    }

    func denial(tokenID: String?, sessionID: String?, userID: String?) -> AccessTokenDenial {
        storage.withLockedValue { storage in
            AccessTokenDenial(
                tokenIDRevoked: tokenID.map { storage.revokedTokenIDs[$0] != nil } ?? false,
                sessionRevoked: sessionID.map { storage.revokedFamilies.contains($0) } ?? false,
                userRevokedUpTo: userID.flatMap { storage.userRevokedUpTo[$0] }
            )
        }
    }

    func replacePasswordHash(email: String, expectedHash: String, newHash: String) -> Bool {
        storage.withLockedValue { storage in
            guard storage.users[email]?.passwordHash == expectedHash else { return false }
            storage.users[email]?.passwordHash = newHash
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
        self.tell(.tokenID(jti, expiresAt: expiresAt))
    }

    func isRevoked(_ jti: String) -> Bool { storage.withLockedValue { $0.revokedTokenIDs[jti] != nil } }
}
