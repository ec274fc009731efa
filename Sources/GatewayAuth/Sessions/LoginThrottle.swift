package import GatewayCore
package import NIOCore

/// Whether a login attempt may proceed: limits per client address and per account
/// (against password guessing). Called on the request's event loop.
package protocol LoginThrottle: AnyObject {
    /// Counts one attempt for the address and the account, each when given; a refusal
    /// carries the seconds until one is allowed. Each purpose counts in buckets of its own.
    func admit(
        address: String?,
        account: String?,
        purpose: LoginThrottlePurpose
    ) -> EventLoopFuture<LoginThrottleDecision>
}

extension LoginThrottle {
    package func admit(address: String, account: String?) -> EventLoopFuture<LoginThrottleDecision> {
        self.admit(address: address, account: account, purpose: .login)
    }
}

/// Which endpoint an attempt is for: a refresh (no account yet) or a new authorization flow
/// must not use up the address's login attempts, nor the other way round.
package enum LoginThrottlePurpose: String, Sendable {
    case login
    case refresh
    /// A new OAuth authorization flow (`GET /oauth/authorize` stores one in Redis for ten
    /// minutes): bounded per address so page loads cannot fill the store.
    case authorize
    /// `/oauth/token`, `/oauth/revoke`, `/oauth/introspect`: per address before the client
    /// is authenticated, per client (`account` = `client:<id>`) once it is.
    case oauthToken = "oauth-token"
    /// A form posted to the settings pages (create or revoke an API key, sign out): per
    /// address, in buckets of their own.
    case settings
}

package enum LoginThrottleDecision: Sendable, Equatable {
    case allowed
    /// `headers`: the `RateLimit-Policy`/`RateLimit` fields of the buckets, when known.
    case limited(retryAfterSeconds: Int, headers: [GatewayError.HeaderField] = [])
    /// The shared limiter could not be asked and its policy is to deny.
    case unavailable
}
