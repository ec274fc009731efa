/// `[ui]`: the browser pages the gateway serves itself (the OAuth sign-in and consent
/// pages): how long a browser stays signed in. Immutable snapshot; any thread.
package struct UISettings: Sendable, Hashable {
    /// A browser session unused this long is over.
    package var sessionIdleTimeout: Duration = .seconds(30 * 60)
    /// A browser session ends this long after sign-in, however active.
    package var sessionLifetime: Duration = .seconds(12 * 3600)

    package init() {}
}
