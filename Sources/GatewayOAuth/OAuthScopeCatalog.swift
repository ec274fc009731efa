/// The human descriptions of the product's scopes, shown on the consent page next to each
/// requested scope and listed as `scopes_supported` in the metadata. Immutable; any thread.
package enum OAuthScopeCatalog {
    /// In the order the consent page lists them.
    package static let entries: [(scope: String, description: String)] = [
        ("read:databases", "View database connections and metadata"),
        ("write:databases", "Create, update, and delete database connections"),
        ("read:policies", "View audit policies and rules"),
        ("write:policies", "Create, update, and delete audit policies"),
        ("read:alerts", "View security alerts and notifications"),
        ("write:alerts", "Acknowledge and manage alerts"),
        ("read:logs", "Access audit logs and activity history"),
        ("read:reports", "Generate and view compliance reports"),
        ("admin", "Full administrative access to all resources"),
    ]

    private static let byScope: [String: String] = Dictionary(
        uniqueKeysWithValues: entries.map { ($0.scope, $0.description) }
    )

    /// The description of `scope`, or nil for a scope outside the catalog (the consent page
    /// then shows the scope itself).
    package static func description(of scope: String) -> String? { byScope[scope] }

    package static var scopes: [String] { entries.map(\.scope) }
}
