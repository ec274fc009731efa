import GatewayCore
import GatewayCrypto
package import GatewayStore
package import NIOCore

/// Rotates refresh tokens for the endpoints that answer with a new token pair
/// (`/v1/auth/refresh`, `/oauth/token`), with the retry grace: the just-rotated token,
/// presented again within `[auth.jwt] refresh_reuse_grace` and before its successor was
/// used, gets the very answer the rotation gave instead of revoking the family (a client
/// whose answer was lost, two tabs refreshing at once). That answer is kept in the store
/// only sealed (AES-256-GCM) under a key derived from the old token itself, which the store
/// never holds, and only for the grace window. A retry that arrives while the rotation is
/// still being answered waits for it (bounded), so concurrent refreshes mint one pair.
/// One per endpoint per event loop; touched only on that loop.
package final class RefreshRotator {
    package enum Outcome: Sendable, Equatable {
        /// A new pair: the endpoint's answer for the rotated grant.
        case answered(String)
        /// A retry inside the grace: the answer of the rotation it repeats.
        case replayed(String)
        /// Unknown, expired, revoked, or a grant of another client.
        case invalid
        /// A rotated token presented again outside the grace: the family is now revoked.
        case reused
    }

    package static let tokenPrefix = "dbaudit_rt_"
    /// How often, and how far apart, a retry looks for the answer of a rotation in progress.
    static let pendingPolls = 40
    static let pollInterval = TimeAmount.milliseconds(50)

    private let sessions: any SessionStore
    private let graceSeconds: Int64

    package init(sessions: any SessionStore, graceSeconds: Int64) {
        self.sessions = sessions
        self.graceSeconds = max(0, graceSeconds)
    }

    /// A new refresh token.
    package static func makeToken() -> String {
        tokenPrefix + Base64URL.encode(SecureRandom.bytes(32))
    }

    /// Whether `token` has the shape of one of our refresh tokens (checked before any store
    /// round trip).
    package static func isPlausible(_ token: String) -> Bool {
        token.hasPrefix(tokenPrefix) && token.utf8.count <= 128
    }

    /// The store key of a refresh token: hex SHA-256.
    package static func hash(_ token: String) -> String {
        Hex.encode(Digest.sha256.hash(Array(token.utf8)))
    }

    /// Rotates `token` for `clientID` (nil: the first-party refresh); `answer` builds the
    /// response for the rotated grant and the new refresh token.
    package func rotate(
        token: String,
        clientID: String?,
        now: Int64,
        eventLoop: any EventLoop,
        answer: @escaping (RefreshGrant, String) -> EventLoopFuture<String>
    ) -> EventLoopFuture<Outcome> {
        self.attempt(
            token: token,
            clientID: clientID,
            now: now,
            eventLoop: eventLoop,
            pollsLeft: Self.pendingPolls,
            answer: answer
        )
    }

    private func attempt(
        token: String,
        clientID: String?,
        now: Int64,
        eventLoop: any EventLoop,
        pollsLeft: Int,
        answer: @escaping (RefreshGrant, String) -> EventLoopFuture<String>
    ) -> EventLoopFuture<Outcome> {
        let tokenHash = Self.hash(token)
        let newToken = Self.makeToken()
        let newHash = Self.hash(newToken)
        let grace = self.graceSeconds
        let sessions = self.sessions
        return sessions.rotateRefresh(
            tokenHash: tokenHash,
            newTokenHash: newHash,
            now: now,
            graceSeconds: grace,
            clientID: clientID
        )
        .assumeIsolated().flatMap { rotation -> EventLoopFuture<Outcome> in
            switch rotation {
            case .invalid:
                return eventLoop.makeSucceededFuture(.invalid)
            case .reused:
                return eventLoop.makeSucceededFuture(.reused)
            case .rotated(let grant):
                return answer(grant, newToken).assumeIsolated().flatMap { body -> EventLoopFuture<Outcome> in
                    guard grace > 0 else { return eventLoop.makeSucceededFuture(.answered(body)) }
                    let sealed = AESGCM.seal(
                        Array(body.utf8),
                        key: Self.sealingKey(token),
                        associatedData: Array(newHash.utf8)
                    )
                    // Waited for, so a retry right after this answer finds it; a failure
                    // only costs the retry its grace.
                    return sessions.recordRotationResult(
                        tokenHash: tokenHash,
                        successorHash: newHash,
                        sealedResult: sealed
                    )
                    .map { .answered(body) }.recover { _ in .answered(body) }
                }.nonisolated()
            case .retried(let successor, let sealed?):
                guard let body = AESGCM.open(sealed, key: Self.sealingKey(token), associatedData: Array(successor.utf8))
                else {
                    return eventLoop.makeSucceededFuture(.invalid)
                }
                return eventLoop.makeSucceededFuture(.replayed(String(decoding: body, as: UTF8.self)))
            case .retried(_, nil):
                guard pollsLeft > 0 else {
                    return eventLoop.makeFailedFuture(
                        GatewayError(
                            status: 503,
                            code: "busy",
                            description: "A refresh with this token is still being answered; retry in a second.",
                            headers: [.init("Retry-After", "1")]
                        )
                    )
                }
                let promise = eventLoop.makePromise(of: Outcome.self)
                eventLoop.assumeIsolated().scheduleTask(in: Self.pollInterval) {
                    self.attempt(
                        token: token,
                        clientID: clientID,
                        now: now,
                        eventLoop: eventLoop,
                        pollsLeft: pollsLeft - 1,
                        answer: answer
                    )
                    .cascade(to: promise)
                }
                return promise.futureResult
            }
        }.nonisolated()
    }

    /// The key the answer of a rotation is sealed under: derived from the old token, which
    /// only its holder knows (the store keeps its SHA-256, a different function of it).
    static func sealingKey(_ token: String) -> [UInt8] {
        HMACSHA256(key: Array(token.utf8)).authenticationCode(for: Array("dbaudit-gateway refresh retry v1".utf8))
    }
}
