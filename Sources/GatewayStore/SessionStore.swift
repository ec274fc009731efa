package import NIOCore

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
    /// Stores `newHash` as the password hash of `email` only if the stored hash is still
    /// `expectedHash` (a rehash at login must not undo a password change made meanwhile).
    /// True if written.
    func replacePasswordHash(email: String, expectedHash: String, newHash: String) -> EventLoopFuture<Bool>
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
    /// Revokes the family of `tokenHash` (logout) and with it every access token whose
    /// `sid` names that family, on every instance. True if the token was known.
    func revokeRefreshFamily(tokenHash: String, now: Int64) -> EventLoopFuture<Bool>
    /// Ends session `sessionID` (a refresh family): its refresh tokens stop working and every
    /// access token whose `sid` names it is refused on every instance (logout with only the
    /// access token).
    func revokeSession(_ sessionID: String, now: Int64) -> EventLoopFuture<Void>
    /// Refuses every access token of ours for user `userID` issued at or before
    /// `issuedUpTo` (its `iat`), on every instance (`users disable`).
    func revokeUserTokens(userID: String, issuedUpTo: Int64, now: Int64) -> EventLoopFuture<Void>

    /// Denies the JWT id until `expiresAt` and tells every instance.
    func revokeTokenID(_ jti: String, expiresAt: Int64, now: Int64) -> EventLoopFuture<Void>
    func isTokenIDRevoked(_ jti: String) -> EventLoopFuture<Bool>
    /// The deny-list state of one access token of ours, in one round trip: its `jti`, its
    /// session and its user (each nil: not asked).
    func accessTokenDenial(tokenID: String?, sessionID: String?, userID: String?) -> EventLoopFuture<AccessTokenDenial>
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
