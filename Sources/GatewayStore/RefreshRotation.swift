/// The result of presenting a refresh token.
package enum RefreshRotation: Sendable, Equatable {
    /// The token was current: it is now spent and `newTokenHash` holds the grant.
    case rotated(RefreshGrant)
    /// The token had already been rotated: the family is now revoked.
    case reused
    /// The token was rotated less than the retry grace ago and its successor is unused:
    /// `sealedResult` is the answer the rotation gave (sealed by the endpoint), or nil
    /// while that rotation is still being answered.
    case retried(successorHash: String, sealedResult: [UInt8]?)
    /// Unknown, expired or of a revoked family.
    case invalid
}
