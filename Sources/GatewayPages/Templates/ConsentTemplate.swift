/// The consent question of an authorization flow. Context: `title`, `client_name`,
/// `user_email`, `scopes` (each `name`, `description`), `redirect_origin`, `flow`,
/// `csrf_token`, `action`, `logout_action`, `session_csrf_token`. Button names, values and
/// ids are part of the contract with browser tests. Immutable.
enum ConsentTemplate {
    static let text = """
        {{> header}}
        <p class="lead"><strong id="client-name">{{client_name}}</strong> wants to access your DBAudit account <strong>{{user_email}}</strong>.</p>
        <p>It asks for these permissions:</p>
        <ul class="scopes" id="scopes">
        {{#scopes}}<li><code>{{name}}</code> <span>{{description}}</span></li>
        {{/scopes}}
        </ul>
        <p class="note">After you decide, you return to <code>{{redirect_origin}}</code>.</p>
        <form method="post" action="{{action}}" class="actions">
        <input type="hidden" name="flow" value="{{flow}}">
        <input type="hidden" name="csrf_token" value="{{csrf_token}}">
        <button type="submit" name="decision" value="allow" id="allow" class="primary">Allow</button>
        <button type="submit" name="decision" value="deny" id="deny">Deny</button>
        </form>
        <form method="post" action="{{logout_action}}" class="signout">
        <input type="hidden" name="flow" value="{{flow}}">
        <input type="hidden" name="csrf_token" value="{{session_csrf_token}}">
        <button type="submit" id="logout" class="link">Not you? Sign out</button>
        </form>
        {{> footer}}
        """
}
