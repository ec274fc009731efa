package import GatewayAuth
package import GatewayStore

/// The JWT side of one event loop: the process-wide runtime plus this loop's session store
/// and the hooks into process-wide services (JWKS refetch, the password-hashing pool).
/// Built on the loop; touched only there.
package struct LoopIdentity {
    package var runtime: IdentityRuntime
    package var sessions: any SessionStore
    package var refetch: UnknownKeyRefetch?
    package var checkPassword: PasswordCheck

    package init(
        runtime: IdentityRuntime,
        sessions: any SessionStore,
        refetch: UnknownKeyRefetch?,
        checkPassword: @escaping PasswordCheck
    ) {
        self.runtime = runtime
        self.sessions = sessions
        self.refetch = refetch
        self.checkPassword = checkPassword
    }
}
