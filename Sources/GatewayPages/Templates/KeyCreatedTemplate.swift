/// The show-once page of a new key: the key in a read-only field (select and copy works
/// without script), a copy button the external script reveals, the warning that it is
/// not shown again. Context: `title`, `stylesheet`, `nav`, `scripts`, `key`, `name`, `id`,
/// `keys`. Immutable.
enum KeyCreatedTemplate {
    static let text = """
        {{> header}}
        <p class="warning" role="alert" id="once-warning"><strong>Copy this key now.</strong> It will not be shown again: the gateway keeps only a hash of it.</p>
        <p>Key <strong id="created-name">{{name}}</strong> (<code id="created-id">{{id}}</code>)</p>
        <label for="api-key">Your new API key</label>
        <div class="copy-row">
        <input type="text" id="api-key" value="{{key}}" readonly spellcheck="false" autocomplete="off">
        <button type="button" id="copy-key" hidden>Copy</button>
        </div>
        <p class="note" id="copy-status" role="status" aria-live="polite"></p>
        <p class="note">Send it as <code>Authorization: Bearer &lt;key&gt;</code>.</p>
        <p><a href="{{keys}}" id="done">Done: back to API keys</a></p>
        {{> footer}}
        """
}
