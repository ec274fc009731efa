package import GatewayCore

/// Bounds the failed authentications one client address may cause, so a spray of guessed
/// credentials costs its sender 429s instead of costing the store a lookup each. The
/// authenticator asks it about every credential that is not cached as valid; a cached
/// valid credential never asks, so a spray from an address does not lock out the good keys
/// its other clients already use. Called on the authenticator's event loop only.
package protocol FailedAuthenticationLimit: AnyObject {
    /// nil: judge the credential; else the 429 to answer at once, before any store lookup.
    /// With `lookup` the store is about to be asked, and `lookupFinished` must follow.
    func admit(client: String, lookup: Bool) -> GatewayError?
    /// The store answered a lookup `admit(client:lookup: true)` let through.
    func lookupFinished(client: String)
    /// An authentication from `client` failed: one failure is charged to its budget.
    func failed(client: String)
}
