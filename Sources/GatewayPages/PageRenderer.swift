import Mustache

/// The compiled page templates: the shared partials (`header`, `footer`, `sso`,
/// `credential_fields`) plus each page.
/// Values are HTML-escaped (`{{name}}`); no template uses the unescaped forms, so text from
/// users, clients or configuration can never become markup. Compiled once per process
/// (`standard`), immutable afterwards, any thread. Other page sets (the settings pages)
/// build their own renderer with `init(pages:)` and share the partials and stylesheet.
package struct PageRenderer: Sendable {
    /// The pages of the authorization flow.
    package enum Page: String, Sendable, CaseIterable {
        case login
        case consent
        case error
    }

    private let library: MustacheLibrary

    /// Compiles `pages` (name -> mustache text) together with the shared partials. A template
    /// that does not parse is a programming error in the binary, so it stops the process at
    /// start-up rather than failing a request later.
    package init(pages: [String: String]) {
        var library = MustacheLibrary()
        let partials = [
            "header": HeaderTemplate.text, "footer": FooterTemplate.text, "sso": SSOTemplate.text,
            "credential_fields": CredentialFieldsTemplate.text,
        ]
        let all = pages.merging(partials) { page, _ in page }
        for (name, text) in all {
            do {
                try library.register(text, named: name)
            } catch {
                preconditionFailure("page template \(name) does not parse: \(error)")
            }
        }
        self.library = library
    }

    package static let standard = PageRenderer(pages: [
        Page.login.rawValue: LoginTemplate.text,
        Page.consent.rawValue: ConsentTemplate.text,
        Page.error.rawValue: ErrorTemplate.text,
    ])

    /// The page as UTF-8 bytes. `context` holds strings, booleans and arrays of such
    /// dictionaries only.
    package func render(_ page: Page, _ context: [String: Any]) -> [UInt8] {
        self.render(named: page.rawValue, context)
    }

    package func render(named name: String, _ context: [String: Any]) -> [UInt8] {
        guard let text = self.library.render(context, withTemplate: name) else {
            preconditionFailure("no page template named \(name)")
        }
        return Array(text.utf8)
    }
}
