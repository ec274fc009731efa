package import GatewayAuth

/// What a reload changes, worked out by `GatewayApplication.changes(to:)` before anything
/// is applied: the application to put in force and which of its parts the running gateway
/// must rebuild. A value; any thread.
package struct ApplicationChange: Sendable {
    /// What the JWT setup does on a reload.
    package enum Identity: Sendable {
        /// `[auth.jwt]` is as it was: each loop keeps its verifier, cache and fetched keys.
        case unchanged
        /// New verifiers (and a new refresher) from this runtime.
        case replaced(IdentityRuntime)
        /// `[auth.jwt]` now configures no issuer: JWTs are off.
        case removed
    }

    /// The application to put in force: the new configuration, except for the settings
    /// named in `needsRestart`, which keep their current values.
    package var application: GatewayApplication
    /// One phrase per setting that changed but needs a restart (each logged as a warning).
    package var needsRestart: [String]
    package var identity: Identity
    /// The `[[sso.providers]]` were added, removed or pointed elsewhere: their key
    /// refresher starts over with the new set.
    package var ssoKeySourcesChanged: Bool
    /// `[[auth.oauth.introspection]]` changed: each loop's introspection starts afresh
    /// (otherwise it keeps what its cache learned).
    package var introspectionChanged: Bool
}
