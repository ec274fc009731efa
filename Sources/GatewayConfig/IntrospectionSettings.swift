/// One `[[auth.oauth.introspection]]`: another authorization server whose opaque access
/// tokens the gateway accepts by asking its RFC 7662 introspection endpoint. Immutable
/// value; any thread.
package struct IntrospectionSettings: Sendable, Hashable {
    /// The endpoint URL: https, or http only to a loopback address.
    package var endpoint: String
    /// How the gateway authenticates to the endpoint (`client_secret_basic`).
    package var clientID: String
    /// From `client_secret_file` or `client_secret_env`; never rendered.
    package var clientSecret: Secret
    /// Trust anchors for the endpoint's certificate; nil = the system trust store.
    package var caFile: String?
    /// The whole exchange (connect, TLS, answer) must finish within this.
    package var timeout: Duration = .milliseconds(500)
    /// An answer is never used longer than this (nor past the token's `exp`).
    package var cacheMax: Duration = .seconds(300)
    /// How long `active: false` is remembered.
    package var negativeTTL: Duration = .seconds(10)

    package init(endpoint: String, clientID: String, clientSecret: Secret) {
        self.endpoint = endpoint
        self.clientID = clientID
        self.clientSecret = clientSecret
    }
}
