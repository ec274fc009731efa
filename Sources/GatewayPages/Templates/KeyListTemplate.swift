/// Settings > API Keys: the keys (name, id and first characters, scopes, created, last
/// used, expires, rate-limit tier; the owner for admins), never a secret; an empty state
/// with a call to action. Context: `title`, `stylesheet`, `nav`, `new_key`, `keys` (each
/// `id`, `name`, `display`, `scopes` (`name`), `created`, `last_used`, `expires`, `tier`,
/// `environment`, optional `owner`, `revoke`), `empty`, `is_admin`, optional `notice`,
/// optional `next_page`. Immutable.
enum KeyListTemplate {
    static let text = """
        {{> header}}
        {{#notice}}<p class="notice" role="status" id="notice">{{notice}}</p>{{/notice}}
        {{#is_admin}}<p class="note">As an admin you see every user's keys.</p>{{/is_admin}}
        <p><a class="button primary" id="create-key" href="{{new_key}}">Create API Key</a></p>
        {{#empty}}<section class="empty" id="empty-state">
        <h2>No API keys yet</h2>
        <p>An API key lets a script or a service call the DBAudit API as you, with only the scopes you give it.</p>
        <p><a href="{{new_key}}">Create your first API key</a></p>
        </section>{{/empty}}
        <ul class="keys" id="keys">
        {{#keys}}<li class="key" id="key-{{id}}">
        <h2 class="key-name">{{name}}</h2>
        <dl>
        <dt>Key</dt><dd><code class="key-display">{{display}}</code> <span class="note">({{environment}})</span></dd>
        <dt>Key id</dt><dd><code class="key-id">{{id}}</code></dd>
        {{#owner}}<dt>Owner</dt><dd><code class="key-owner">{{owner}}</code></dd>{{/owner}}
        <dt>Scopes</dt><dd class="key-scopes">{{#scopes}}<code>{{name}}</code> {{/scopes}}</dd>
        <dt>Created</dt><dd>{{created}}</dd>
        <dt>Last used</dt><dd>{{last_used}}</dd>
        <dt>Expires</dt><dd>{{expires}}</dd>
        <dt>Rate-limit tier</dt><dd>{{tier}}</dd>
        </dl>
        <p><a href="{{revoke}}" class="revoke" id="revoke-{{id}}">Revoke<span class="visually-hidden"> {{name}}</span></a></p>
        </li>
        {{/keys}}
        </ul>
        {{#next_page}}<p><a href="{{next_page}}" id="next-page">More keys</a></p>{{/next_page}}
        {{> footer}}
        """
}
