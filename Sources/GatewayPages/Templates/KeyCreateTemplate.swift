/// The "Create API Key" form: a name, a checkbox per scope the user holds (with its
/// description), live or test, an expiry; each error next to its field (`aria-describedby`).
/// Context: `title`, `stylesheet`, `nav`, `action`, `csrf_token`, `name`, `scopes` (each
/// `field`, `name`, `description`, `checked`), `live`, `test`, `expiries` (each `value`,
/// `label`, `checked`), `has_errors`, `error_name`, `error_scopes`, `error_environment`, `error_expires`, `max_name`,
/// `cancel`. Immutable.
enum KeyCreateTemplate {
    static let text = """
        {{> header}}
        {{#has_errors}}<p class="error" role="alert" id="form-error">The key was not created: correct the fields marked below.</p>{{/has_errors}}
        <form method="post" action="{{action}}" class="stack" novalidate>
        <input type="hidden" name="csrf_token" value="{{csrf_token}}">
        <label for="name">Name</label>
        <p class="note" id="name-hint">What the key is for, e.g. "CI export". At most {{max_name}} characters.</p>
        {{#error_name}}<p class="field-error" id="name-error">{{error_name}}</p>{{/error_name}}
        <input type="text" id="name" name="name" value="{{name}}" maxlength="{{max_name}}" required aria-describedby="name-hint{{#error_name}} name-error{{/error_name}}"{{#error_name}} aria-invalid="true"{{/error_name}}>
        <fieldset id="scopes"{{#error_scopes}} aria-describedby="scopes-error"{{/error_scopes}}>
        <legend>Scopes</legend>
        {{#error_scopes}}<p class="field-error" id="scopes-error">{{error_scopes}}</p>{{/error_scopes}}
        {{#scopes}}<div class="check">
        <input type="checkbox" id="{{field}}" name="{{field}}" value="on"{{#checked}} checked{{/checked}}>
        <label for="{{field}}"><code>{{name}}</code> <span class="description">{{description}}</span></label>
        </div>
        {{/scopes}}
        </fieldset>
        <fieldset id="environment">
        <legend>Environment</legend>
        {{#error_environment}}<p class="field-error" id="environment-error">{{error_environment}}</p>{{/error_environment}}
        <div class="check"><input type="radio" id="environment-live" name="environment" value="live"{{#live}} checked{{/live}}>
        <label for="environment-live">Live <span class="description">(keys start with dbaudit_live_)</span></label></div>
        <div class="check"><input type="radio" id="environment-test" name="environment" value="test"{{#test}} checked{{/test}}>
        <label for="environment-test">Test <span class="description">(keys start with dbaudit_test_)</span></label></div>
        </fieldset>
        <label for="expires">Expires</label>
        {{#error_expires}}<p class="field-error" id="expires-error">{{error_expires}}</p>{{/error_expires}}
        <select id="expires" name="expires">
        {{#expiries}}<option value="{{value}}"{{#checked}} selected{{/checked}}>{{label}}</option>
        {{/expiries}}
        </select>
        <div class="actions">
        <button type="submit" id="create" class="primary">Create API Key</button>
        <a href="{{cancel}}" id="cancel">Cancel</a>
        </div>
        </form>
        {{> footer}}
        """
}
