package import NIOCore

/// `OAuthStore` over `InMemoryOAuthData`, for the demo (no Redis); one per event loop,
/// every future completes on that loop.
package final class InMemoryOAuthStore: OAuthStore {
    package let eventLoop: any EventLoop
    private let data: InMemoryOAuthData

    package init(eventLoop: any EventLoop, data: InMemoryOAuthData) {
        self.eventLoop = eventLoop
        self.data = data
    }

    package func client(id: String) -> EventLoopFuture<OAuthClient?> {
        self.eventLoop.makeSucceededFuture(self.data.client(id: id))
    }

    package func listClients() -> EventLoopFuture<[OAuthClient]> {
        self.eventLoop.makeSucceededFuture(self.data.listClients())
    }

    package func createClient(_ client: OAuthClient) -> EventLoopFuture<Void> {
        self.data.createClient(client)
            ? self.eventLoop.makeSucceededVoidFuture() : self.eventLoop.makeFailedFuture(CredentialStoreError.conflict)
    }

    package func replaceClient(_ client: OAuthClient) -> EventLoopFuture<Bool> {
        self.eventLoop.makeSucceededFuture(self.data.replaceClient(client))
    }

    package func removeClient(id: String) -> EventLoopFuture<Bool> {
        self.eventLoop.makeSucceededFuture(self.data.removeClient(id: id))
    }

    package func storeCode(codeHash: String, record: AuthorizationCodeRecord, now: Int64) -> EventLoopFuture<Void> {
        self.data.storeCode(codeHash: codeHash, record: record, now: now)
            ? self.eventLoop.makeSucceededVoidFuture() : self.eventLoop.makeFailedFuture(CredentialStoreError.conflict)
    }

    package func redeemCode(codeHash: String, now: Int64) -> EventLoopFuture<CodeRedemption> {
        self.eventLoop.makeSucceededFuture(self.data.redeemCode(codeHash: codeHash, now: now))
    }

    package func recordIssued(fromCode codeHash: String, issuance: CodeIssuance) -> EventLoopFuture<Bool> {
        self.eventLoop.makeSucceededFuture(self.data.recordIssued(fromCode: codeHash, issuance: issuance))
    }

    package func recordGrantAccessToken(
        family: String,
        token: GrantAccessToken,
        keepUntil: Int64,
        now: Int64
    ) -> EventLoopFuture<Void> {
        self.data.recordGrantAccessToken(family: family, token: token, keepUntil: keepUntil, now: now)
        return self.eventLoop.makeSucceededVoidFuture()
    }

    package func takeGrantAccessTokens(family: String) -> EventLoopFuture<[GrantAccessToken]> {
        self.eventLoop.makeSucceededFuture(self.data.takeGrantAccessTokens(family: family))
    }

    package func storeConsent(userID: String, clientID: String, scopes: [String]) -> EventLoopFuture<Void> {
        self.data.storeConsent(userID: userID, clientID: clientID, scopes: scopes)
        return self.eventLoop.makeSucceededVoidFuture()
    }

    package func consent(userID: String, clientID: String) -> EventLoopFuture<[String]?> {
        self.eventLoop.makeSucceededFuture(self.data.consent(userID: userID, clientID: clientID))
    }

    package func revokeConsent(userID: String, clientID: String) -> EventLoopFuture<Void> {
        self.data.revokeConsent(userID: userID, clientID: clientID)
        return self.eventLoop.makeSucceededVoidFuture()
    }
}
