import GatewayAuth
import GatewayStore
import NIOCore

/// The JWT side of one event loop: the process-wide runtime plus this loop's session store
/// and the hooks into process-wide services (JWKS refetch, the password-hashing pool).
/// Built on the loop; touched only there.
struct LoopIdentity {
    var runtime: IdentityRuntime
    var sessions: any SessionStore
    var refetch: UnknownKeyRefetch?
    var checkPassword: PasswordCheck
    var rehashPassword: PasswordRehash

    /// `runtime` on a loop with `sessions`. Unknown-kid refetches go through the JWT
    /// refresher service, which only has issuers to fetch when `runtime` has remote ones.
    static func make(_ runtime: IdentityRuntime, sessions: any SessionStore, shared: SharedLoopServices) -> LoopIdentity
    {
        let refresher = shared.jwtRefresher
        var refetch: UnknownKeyRefetch?
        if !runtime.remoteIssuers.isEmpty {
            refetch = { issuer, _, loop in refresher.refetch(issuer: issuer, from: loop) }
        }
        return LoopIdentity(
            runtime: runtime,
            sessions: sessions,
            refetch: refetch,
            checkPassword: shared.checkPassword,
            rehashPassword: shared.rehashPassword
        )
    }
}
