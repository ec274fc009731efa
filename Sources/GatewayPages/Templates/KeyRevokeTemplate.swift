/// The confirmation step before a key is revoked. Context: `title`, `stylesheet`, `nav`,
/// `action`, `csrf_token`, `id`, `name`, `display`, optional `owner`, `cancel`. Immutable.
enum KeyRevokeTemplate {
    static let text = """
        {{> header}}
        <p class="lead">Revoke <strong id="revoke-name">{{name}}</strong> (<code>{{display}}</code>, <code id="revoke-id">{{id}}</code>){{#owner}} of <code>{{owner}}</code>{{/owner}}?</p>
        <p>Every request with this key is refused from now on, on every gateway instance. This cannot be undone.</p>
        <form method="post" action="{{action}}" class="actions">
        <input type="hidden" name="csrf_token" value="{{csrf_token}}">
        <input type="hidden" name="id" value="{{id}}">
        <button type="submit" id="confirm-revoke" class="danger">Revoke key</button>
        <a href="{{cancel}}" id="cancel">Cancel</a>
        </form>
        {{> footer}}
        """
}
