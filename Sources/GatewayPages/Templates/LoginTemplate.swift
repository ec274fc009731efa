/// The sign-in form of an authorization flow. Context: `title`, `client_name`, `flow`,
/// `csrf_token`, `action`, optional `error`, optional `email`, `password_login_off` (hide the
/// form) and `sso_providers` (`SSOTemplate`). Field names and ids are
/// part of the contract with browser tests and must not change. Immutable.
enum LoginTemplate {
    static let text = """
        {{> header}}
        <p class="lead">Sign in to continue to <strong>{{client_name}}</strong>.</p>
        {{#error}}<p class="error" role="alert" id="login-error">{{error}}</p>{{/error}}
        {{> sso}}
        {{^password_login_off}}
        <form method="post" action="{{action}}" class="stack">
        <input type="hidden" name="flow" value="{{flow}}">
        <input type="hidden" name="csrf_token" value="{{csrf_token}}">
        {{> credential_fields}}
        </form>
        {{/password_login_off}}
        {{> footer}}
        """
}
