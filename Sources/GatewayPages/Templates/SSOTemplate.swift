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
            "sso_providers": settings.providers.map {
                ["name": $0.name, "display_name": $0.displayName, "href": href($0.name)]
            },
        ]
    }
}
