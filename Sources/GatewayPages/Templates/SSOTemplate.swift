/// The "Sign in with <provider>" links of both sign-in pages (partial `sso`). Context:
/// `has_sso`, and `sso_providers`, a list of `name`, `display_name`, `href` (to
/// `/sso/start`). Each link has the id `sso-<name>`. Immutable.
enum SSOTemplate {
    static let text = """
        {{#has_sso}}<div class="stack sso">
        {{#sso_providers}}<a class="button primary" id="sso-{{name}}" href="{{href}}">Sign in with {{display_name}}</a>
        {{/sso_providers}}</div>{{/has_sso}}
        """

    /// The context keys of the partial and `password_login_off` for a sign-in page; `href`
    /// builds each provider's start link.
    static func context(_ settings: SSOButtons, href: (String) -> String) -> [String: Any] {
        [
            "password_login_off": !settings.passwordLogin,
            "has_sso": !settings.providers.isEmpty,
            "sso_providers": settings.providers.map { ["name": $0.name, "display_name": $0.displayName, "href": href($0.name)] },
        ]
    }
}

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
