package import NIOCore

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

    package func revokeRefreshFamily(tokenHash: String, now: Int64) -> EventLoopFuture<Bool> {
        eventLoop.makeSucceededFuture(data.revokeFamily(tokenHash, now: now))
    }

    package func revokeSession(_ sessionID: String, now: Int64) -> EventLoopFuture<Void> {
        data.revokeSession(sessionID, now: now)
        return eventLoop.makeSucceededVoidFuture()
    }

    package func revokeUserTokens(userID: String, issuedUpTo: Int64, now: Int64) -> EventLoopFuture<Void> {
        data.revokeUserTokens(userID: userID, issuedUpTo: issuedUpTo, now: now)
        return eventLoop.makeSucceededVoidFuture()
    }

    package func accessTokenDenial(
        tokenID: String?,
        sessionID: String?,
        userID: String?
    ) -> EventLoopFuture<AccessTokenDenial> {
        eventLoop.makeSucceededFuture(data.denial(tokenID: tokenID, sessionID: sessionID, userID: userID))
    }

    package func replacePasswordHash(email: String, expectedHash: String, newHash: String) -> EventLoopFuture<Bool> {
        eventLoop.makeSucceededFuture(
            data.replacePasswordHash(email: email, expectedHash: expectedHash, newHash: newHash)
        )
    }

    package func revokeTokenID(_ jti: String, expiresAt: Int64, now: Int64) -> EventLoopFuture<Void> {
        data.revokeTokenID(jti, expiresAt: expiresAt, now: now)
        return eventLoop.makeSucceededVoidFuture()
    }

    package func isTokenIDRevoked(_ jti: String) -> EventLoopFuture<Bool> {
        eventLoop.makeSucceededFuture(data.isRevoked(jti))
    }
}
