/// The result of presenting an authorization code.
package enum CodeRedemption: Sendable, Hashable {
    /// First use: the code is now spent and this is what it grants.
    case redeemed(AuthorizationCodeRecord)
    /// Already redeemed: `issued` is what the first redemption recorded (nil if it has not
    /// recorded anything yet; it then learns of the reuse from `recordIssued`).
    case reused(AuthorizationCodeRecord, issued: CodeIssuance?)
    /// Unknown or expired.
    case invalid
}
