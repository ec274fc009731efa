import Foundation
package import GatewayCore
package import GatewayStore
package import NIOCore

/// The one e-mail + password check of the gateway, shared by `POST /v1/auth/login` and the
/// browser sign-in page so both count attempts in the same per-address and per-account
/// buckets and cost the same: the throttle first, then the user, then scrypt on the thread
/// pool (`checkPassword`), with the decoy hash for an unknown or disabled account so the
/// answer and its timing do not tell which e-mails exist. Caps the checks queued per loop.
/// One per event loop; touched only there.
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
    private var pendingHashes = 0

    package init(
        sessions: any SessionStore,
        throttle: any LoginThrottle,
        checkPassword: @escaping PasswordCheck,
        decoyHash: String
    ) {
        self.sessions = sessions
        self.throttle = throttle
        self.checkPassword = checkPassword
        self.decoyHash = decoyHash
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
                    return user
                }.nonisolated()
            }.flatMapErrorThrowing { error in throw Self.mapped(error) }.nonisolated()
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
