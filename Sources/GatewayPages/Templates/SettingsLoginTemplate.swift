/// The sign-in form of the settings pages: the same field names and ids as the OAuth
/// sign-in form (`email`, `password`, hidden `csrf_token`, button `login`), plus hidden
/// `next` (where to go after, a settings path). Context: `title`, `stylesheet`, `action`,
/// `csrf_token`, `next`, optional `error`, `notice`, `email`, `password_login_off`, `sso_providers`. Immutable.
enum SettingsLoginTemplate {
    static let text = """
        {{> header}}
        <p class="lead">Sign in to manage your API keys.</p>
        {{#notice}}<p class="notice" role="status" id="login-notice">{{notice}}</p>{{/notice}}
        {{#error}}<p class="error" role="alert" id="login-error">{{error}}</p>{{/error}}
        {{> sso}}
        {{^password_login_off}}
        <form method="post" action="{{action}}" class="stack narrow">
        <input type="hidden" name="csrf_token" value="{{csrf_token}}">
        <input type="hidden" name="next" value="{{next}}">
        {{> credential_fields}}
        </form>
        {{/password_login_off}}
        {{> footer}}
        """
}
