/// The one stylesheet of every page, served at `GET /oauth/static/gateway.css`. Kept in the
/// binary so an installation needs no extra files; system fonts only, nothing external.
/// Readable from phone width up. Immutable.
package enum Stylesheet {
    package static let path = "/oauth/static/gateway.css"

    package static let text = """
        :root { color-scheme: light dark; --fg: #1d2430; --muted: #5b6576; --bg: #f3f5f8; --card: #ffffff;
          --accent: #1f5fbf; --accent-fg: #ffffff; --border: #d5dae2; --error: #a4161a; --error-bg: #fdecec; }
        @media (prefers-color-scheme: dark) {
          :root { --fg: #e6e9ee; --muted: #a3acba; --bg: #14181f; --card: #1d232c; --accent: #6ea2ff;
            --accent-fg: #0b1220; --border: #323b48; --error: #ffb3b3; --error-bg: #3a1d1f; }
        }
        * { box-sizing: border-box; }
        html { font-size: 100%; }
        body { margin: 0; padding: 1rem; background: var(--bg); color: var(--fg);
          font: 1rem/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
        .brand { max-width: 30rem; margin: 1rem auto 0.75rem; font-weight: 600; color: var(--muted); }
        .brand-mark { color: var(--accent); }
        .card { max-width: 30rem; margin: 0 auto; padding: 1.5rem; background: var(--card);
          border: 1px solid var(--border); border-radius: 0.5rem; }
        h1 { font-size: 1.35rem; margin: 0 0 1rem; }
        .lead { margin-top: 0; }
        .note { color: var(--muted); font-size: 0.9rem; }
        .error { color: var(--error); background: var(--error-bg); padding: 0.6rem 0.8rem; border-radius: 0.35rem; }
        .stack { display: flex; flex-direction: column; gap: 0.4rem; }
        label { font-weight: 600; margin-top: 0.4rem; }
        input[type=email], input[type=password], input[type=text] { width: 100%; padding: 0.55rem 0.65rem;
          font: inherit; color: inherit; background: transparent; border: 1px solid var(--border); border-radius: 0.35rem; }
        input:focus-visible, button:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
        button { font: inherit; padding: 0.55rem 1.1rem; border-radius: 0.35rem; border: 1px solid var(--border);
          background: transparent; color: inherit; cursor: pointer; }
        button.primary { background: var(--accent); color: var(--accent-fg); border-color: var(--accent); font-weight: 600; }
        button.link { border: none; padding: 0; color: var(--accent); text-decoration: underline; background: none; }
        .stack button { margin-top: 1rem; }
        .actions { display: flex; gap: 0.75rem; flex-wrap: wrap; margin-top: 1.25rem; }
        .signout { margin-top: 1.25rem; }
        .scopes { list-style: none; padding: 0; margin: 0; border: 1px solid var(--border); border-radius: 0.35rem; }
        .scopes li { padding: 0.6rem 0.8rem; border-top: 1px solid var(--border); display: flex; flex-direction: column; }
        .scopes li:first-child { border-top: none; }
        .scopes code { font-weight: 600; }
        code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.9em; word-break: break-all; }

        """
}
