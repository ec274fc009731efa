/// What the sign-in pages show of `[sso]`: the providers' buttons and whether the password
/// form is there. A value; any thread.
package struct SSOButtons: Sendable, Hashable {
    package var passwordLogin: Bool
    package var providers: [(name: String, displayName: String)] { self.entries.map { ($0.name, $0.displayName) } }
    private var entries: [Entry]

    private struct Entry: Sendable, Hashable {
        var name: String
        var displayName: String
    }

    package static let passwordOnly = SSOButtons(passwordLogin: true, providers: [])

    package init(passwordLogin: Bool, providers: [(name: String, displayName: String)]) {
        self.passwordLogin = passwordLogin
        self.entries = providers.map { Entry(name: $0.name, displayName: $0.displayName) }
    }
}
