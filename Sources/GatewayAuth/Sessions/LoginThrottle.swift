package import GatewayCore
package import NIOCore

/// Whether a login attempt may proceed: limits per client address and per account
/// (against password guessing, PRODUCT.md §6). Called on the request's event loop.
package protocol LoginThrottle: AnyObject {
    /// Counts one attempt for the address and, when given, the account; a refusal carries
    /// the seconds until one is allowed. (Refresh has no account: address only.)
    func admit(address: String, account: String?, now: NIODeadline) -> EventLoopFuture<LoginThrottleDecision>
}

package enum LoginThrottleDecision: Sendable, Equatable {
    case allowed
    /// `headers`: the `RateLimit-Policy`/`RateLimit` fields of the buckets, when known.
    case limited(retryAfterSeconds: Int, headers: [GatewayError.HeaderField] = [])
    /// The shared limiter could not be asked and its policy is to deny.
    case unavailable
}
