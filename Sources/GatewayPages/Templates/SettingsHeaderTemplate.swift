/// The top of every settings page (registered as the `header` partial of the settings
/// renderer): the settings stylesheet and, when signed in, who is signed in, a link to the
/// key list and the sign-out button. Context: `title`, `stylesheet`, optional `nav`
/// (`email`, `is_admin`, `keys`, `logout`, `csrf_token`), optional `scripts` (`src`).
/// No inline script or style, nothing external. Immutable.
enum SettingsHeaderTemplate {
    static let text = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="referrer" content="no-referrer">
        <title>{{title}} · DBAudit Gateway</title>
        <link rel="stylesheet" href="{{stylesheet}}">
        {{#scripts}}<script src="{{src}}" defer></script>{{/scripts}}
        </head>
        <body>
        <a class="skip" href="#content">Skip to content</a>
        <header class="brand wide">
        <span><span class="brand-mark" aria-hidden="true">◆</span> DBAudit Gateway · Settings</span>
        {{#nav}}<nav aria-label="Account" class="account">
        <a href="{{keys}}">API keys</a>
        <span class="who" id="signed-in-as">{{email}}{{#is_admin}} (admin){{/is_admin}}</span>
        <form method="post" action="{{logout}}" class="inline">
        <input type="hidden" name="csrf_token" value="{{csrf_token}}">
        <button type="submit" id="logout" class="link">Sign out</button>
        </form>
        </nav>{{/nav}}
        </header>
        <main class="card wide" id="content">
        <h1>{{title}}</h1>

        """
}
