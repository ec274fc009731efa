import Foundation
package import GatewayCore
package import GatewayStore
package import NIOCore

/// The one e-mail + password check of the gateway, shared by `POST /v1/auth/login` and the
/// browser sign-in page so both count attempts in the same per-address and per-account
/// buckets and cost the same: the throttle first, then the user, then scrypt on the thread
/// pool (`checkPassword`), with the decoy hash for an unknown or disabled account so the
/// answer and its timing do not tell which e-mails exist. After a successful check of a
/// hash made with other scrypt parameters than the current cost (`rehash`), the password
/// is hashed again on the pool and stored if the record did not change meanwhile, so the
/// account's wrong-password timing joins the decoy's again. Caps the checks (and rehashes)
/// queued per loop. One per event loop; touched only there.
package final class CredentialCheck {
    /// Password checks queued or running per event loop before logins get 503.
    package static let maximumPendingHashes = 32

    package static let invalidCredentials = GatewayError(
        status: 401,
        code: "invalid_credentials",
        description: "The e-mail address or password is incorrect."
    )

    private let sessions: any SessionStore
    private let throttle: any LoginThrottle
    private let checkPassword: PasswordCheck
    private let decoyHash: String
    private let rehash: (cost: Int, run: PasswordRehash)?
    private var pendingHashes = 0

    /// - Parameter rehash: the current `password_hash_cost` and how to hash with it off the
    ///   loop; nil: stored hashes are never upgraded.
    package init(
        sessions: any SessionStore,
        throttle: any LoginThrottle,
        checkPassword: @escaping PasswordCheck,
        decoyHash: String,
        rehash: (cost: Int, run: PasswordRehash)? = nil
    ) {
        self.sessions = sessions
        self.throttle = throttle
        self.checkPassword = checkPassword
        self.decoyHash = decoyHash
        self.rehash = rehash
    }

    /// The e-mail as accounts are keyed: trimmed and lower-cased.
    package static func normalisedEmail(_ text: String) -> String {
        text.trimmingCharacters(in: .whitespaces).lowercased()
    }

    /// The enabled user whose password this is. Fails with a `GatewayError`:
    /// `invalid_credentials` (401), `too_many_attempts` (429 with Retry-After), `busy` or
    /// `auth_unavailable` (503).
    package func verify(
        email emailText: String,
        password: String,
        clientAddress: String,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<UserRecord> {
        let email = Self.normalisedEmail(emailText)
        guard !email.isEmpty, email.utf8.count <= 254, !password.isEmpty,
            password.utf8.count <= PasswordHasher.maximumPasswordBytes
        else {
            return eventLoop.makeFailedFuture(Self.invalidCredentials)
        }
        return self.admit(address: clientAddress, account: email, purpose: .login, eventLoop: eventLoop)
            .assumeIsolated().flatMap {
                self.sessions.user(email: email)
            }.flatMap { user -> EventLoopFuture<UserRecord> in
                guard self.pendingHashes < Self.maximumPendingHashes else {
                    return eventLoop.makeFailedFuture(
                        GatewayError(
                            status: 503,
                            code: "busy",
                            description: "Too many logins in progress; retry in a second.",
                            headers: [.init("Retry-After", "1")]
                        )
                    )
                }
                self.pendingHashes += 1
                // A provider user has no password: the decoy keeps the timing of a wrong one.
                let encoded = (user?.disabled == false && user?.provider == nil) ? user!.passwordHash : self.decoyHash
                return self.checkPassword(password, encoded, eventLoop).hop(to: eventLoop).assumeIsolated().always {
                    _ in
                    self.pendingHashes -= 1
                }.flatMapThrowing { matches -> UserRecord in
                    guard matches, let user, !user.disabled, user.provider == nil else { throw Self.invalidCredentials }
                    self.upgradeIfStale(user, password: password, eventLoop: eventLoop)
                    return user
                }.nonisolated()
            }.flatMapErrorThrowing { error in throw Self.mapped(error) }.nonisolated()
    }

    /// Rehashes `user`'s password with the current cost when its stored hash has other
    /// parameters. Not waited for by the login (its answer does not depend on it); counted
    /// among the pending hashes so the pool's queue stays bounded, and skipped when full (the
    /// next login tries again). A failed or lost write changes nothing.
    private func upgradeIfStale(_ user: UserRecord, password: String, eventLoop: any EventLoop) {
        guard let rehash, PasswordHasher.needsRehash(user.passwordHash, cost: rehash.cost),
            self.pendingHashes < Self.maximumPendingHashes
        else { return }
        self.pendingHashes += 1
        let sessions = self.sessions
        rehash.run(password, rehash.cost, eventLoop).hop(to: eventLoop).assumeIsolated().always { _ in
            self.pendingHashes -= 1
        }.whenSuccess { newHash in
            _ = sessions.replacePasswordHash(email: user.email, expectedHash: user.passwordHash, newHash: newHash)
        }
    }

    /// Succeeds when the attempt is within the per-address (and per-account) limits.
    package func admit(
        address: String,
        account: String?,
        purpose: LoginThrottlePurpose,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<Void> {
        throttle.admit(address: address, account: account, purpose: purpose).flatMapThrowing { decision in
            switch decision {
            case .allowed:
                return
            case .limited(let seconds, let rateLimitHeaders):
                throw GatewayError(
                    status: 429,
                    code: "too_many_attempts",
                    description: "Too many attempts; wait \(seconds) seconds before trying again.",
                    headers: [.init("Retry-After", String(seconds))] + rateLimitHeaders
                )
            case .unavailable:
                throw GatewayError.authUnavailable
            }
        }
    }

    private static func mapped(_ error: any Error) -> any Error {
        switch error {
        case let error as GatewayError: return error
        case CredentialStoreError.unavailable: return GatewayError.authUnavailable
        default: return GatewayError.internalError
        }
    }
}
