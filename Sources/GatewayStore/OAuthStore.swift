package import NIOCore

/// OAuth clients registered at run time, authorization codes and remembered consents.
/// One instance per event loop; every future completes on that loop. Fails with
/// `CredentialStoreError.unavailable` when the store cannot be asked, `.conflict` when a
/// creation finds its key taken.
package protocol OAuthStore: AnyObject {
    var eventLoop: any EventLoop { get }

    // MARK: clients (`dbaudit-gateway clients ...`)

    func client(id: String) -> EventLoopFuture<OAuthClient?>
    /// Every stored client, sorted by id.
    func listClients() -> EventLoopFuture<[OAuthClient]>
    /// Fails with `.conflict` if the id is taken.
    func createClient(_ client: OAuthClient) -> EventLoopFuture<Void>
    /// Overwrites an existing client (secret rotation); false if it does not exist.
    func replaceClient(_ client: OAuthClient) -> EventLoopFuture<Bool>
    /// False if it did not exist.
    func removeClient(id: String) -> EventLoopFuture<Bool>

    // MARK: authorization codes

    /// Stores a new code under `codeHash` (SHA-256 hex of the code) until `record.expiresAt`.
    func storeCode(codeHash: String, record: AuthorizationCodeRecord, now: Int64) -> EventLoopFuture<Void>
    /// Atomically spends the code (one Lua script: of any number of parallel redemptions
    /// exactly one gets `.redeemed`).
    func redeemCode(codeHash: String, now: Int64) -> EventLoopFuture<CodeRedemption>
    /// Records what was issued from a redeemed code. False when the code was presented
    /// again meanwhile: the caller must revoke what it issued.
    func recordIssued(fromCode codeHash: String, issuance: CodeIssuance) -> EventLoopFuture<Bool>

    // MARK: access tokens of a grant

    /// Remembers an access token issued under the refresh family `family` (a code's first
    /// pair, every refresh), so revoking the grant revokes them too; kept until `keepUntil`.
    func recordGrantAccessToken(
        family: String,
        token: GrantAccessToken,
        keepUntil: Int64,
        now: Int64
    ) -> EventLoopFuture<Void>
    /// The access tokens recorded for `family`, forgotten at once (they are being revoked).
    func takeGrantAccessTokens(family: String) -> EventLoopFuture<[GrantAccessToken]>

    // MARK: consents

    /// Remembers that `userID` granted `clientID` these scopes (sorted, deduplicated).
    func storeConsent(userID: String, clientID: String, scopes: [String]) -> EventLoopFuture<Void>
    /// The scopes `userID` granted `clientID`, or nil.
    func consent(userID: String, clientID: String) -> EventLoopFuture<[String]?>
    func revokeConsent(userID: String, clientID: String) -> EventLoopFuture<Void>
}
