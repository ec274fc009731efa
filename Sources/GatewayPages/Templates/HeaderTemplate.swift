/// The top of every page (a mustache partial named `header`): document head, the one
/// stylesheet, the opening of the page card. No script, no external resource. Immutable.
enum HeaderTemplate {
    static let text = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="referrer" content="no-referrer">
        <title>{{title}} · DBAudit Gateway</title>
        <link rel="stylesheet" href="/oauth/static/gateway.css">
        </head>
        <body>
        <header class="brand"><span class="brand-mark" aria-hidden="true">◆</span> DBAudit Gateway</header>
        <main class="card">
        <h1>{{title}}</h1>

        """
}
