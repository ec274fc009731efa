/// What the settings pages add to the shared stylesheet (wider card, key list, check
/// boxes, the copy row, a skip link); served together with it at `<prefix>/static/settings.css`.
/// System fonts only, nothing external, readable from 320 px up. Immutable.
package enum SettingsStylesheet {
    package static let extra = """
        .brand.wide, .card.wide { max-width: 52rem; }
        .brand.wide { display: flex; flex-wrap: wrap; gap: 0.5rem 1rem; justify-content: space-between; align-items: center; }
        .account { display: flex; flex-wrap: wrap; gap: 0.25rem 1rem; align-items: center; font-weight: 400; }
        .inline { display: inline; margin: 0; }
        a { color: var(--accent); }
        a:focus-visible, select:focus-visible, input:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
        .skip { position: absolute; left: -999px; }
        .skip:focus { left: 1rem; top: 0.5rem; background: var(--card); padding: 0.4rem; }
        .visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
        a.button { display: inline-block; padding: 0.55rem 1.1rem; border-radius: 0.35rem; text-decoration: none; }
        a.button.primary { background: var(--accent); color: var(--accent-fg); font-weight: 600; }
        .notice { background: var(--bg); border-left: 4px solid var(--accent); padding: 0.6rem 0.8rem; }
        .warning { border-left: 4px solid var(--error); background: var(--error-bg); padding: 0.6rem 0.8rem; }
        .field-error { color: var(--error); font-weight: 600; margin: 0.2rem 0; }
        .narrow { max-width: 24rem; }
        .keys { list-style: none; padding: 0; margin: 1rem 0 0; }
        .key { border: 1px solid var(--border); border-radius: 0.4rem; padding: 0.8rem 1rem; margin-bottom: 0.8rem; }
        .key-name { font-size: 1.1rem; margin: 0 0 0.5rem; overflow-wrap: anywhere; }
        .key dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; margin: 0; }
        .key dt { color: var(--muted); }
        .key dd { margin: 0; overflow-wrap: anywhere; }
        @media (max-width: 30rem) { .key dl { grid-template-columns: 1fr; } .key dd { margin-bottom: 0.3rem; } }
        fieldset { border: 1px solid var(--border); border-radius: 0.35rem; margin: 0.8rem 0 0; padding: 0.5rem 0.8rem; }
        legend { font-weight: 600; padding: 0 0.3rem; }
        .check { display: flex; gap: 0.5rem; align-items: flex-start; padding: 0.3rem 0; }
        .check input { margin-top: 0.35rem; width: 1.1rem; height: 1.1rem; flex: none; }
        .check label { font-weight: 400; margin: 0; }
        .description { color: var(--muted); }
        select { font: inherit; color: inherit; background: var(--card); padding: 0.45rem; border: 1px solid var(--border); border-radius: 0.35rem; max-width: 100%; }
        .copy-row { display: flex; gap: 0.5rem; flex-wrap: wrap; margin: 0.3rem 0; }
        .copy-row input { flex: 1 1 16rem; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
        button.danger { background: var(--error); color: var(--card); border-color: var(--error); font-weight: 600; }
        .empty { border: 1px dashed var(--border); border-radius: 0.4rem; padding: 1rem; margin-top: 1rem; }
        .empty h2 { font-size: 1.1rem; margin-top: 0; }
        .stack .actions { align-items: center; margin-top: 1rem; }
        .stack .actions button { margin-top: 0; }

        """
}
