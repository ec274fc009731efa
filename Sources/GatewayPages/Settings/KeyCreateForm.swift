import GatewayCore

/// The "Create API Key" form as posted, checked field by field so each error is shown next
/// to its field: name (required, at most 100 characters), one or more scopes among those
/// `offered` (the ones the user holds; the server re-checks, whatever was posted), `live`
/// or `test`, an expiry of never / 30 / 90 / 365 days. Any other field (an `owner`, say) is
/// refused outright. A value; any thread.
package struct KeyCreateForm: Sendable, Equatable {
    package static let maximumNameCharacters = 100
    package static let expiryChoices: [(value: String, label: String, seconds: Int64?)] = [
        ("never", "Never", nil), ("30", "30 days", 30 * 86_400), ("90", "90 days", 90 * 86_400),
        ("365", "365 days", 365 * 86_400),
    ]
    /// Every field the form has; scopes arrive as `scope_<name>` checkboxes.
    static let knownFields: Set<String> = ["csrf_token", "name", "environment", "expires"]

    package var name: String
    package var scopes: [String]
    package var test: Bool
    package var expires: String
    /// Field name -> message, for the fields that are wrong.
    package var errors: [String: String]

    package var isValid: Bool { errors.isEmpty }

    package var expiresInSeconds: Int64? {
        Self.expiryChoices.first { $0.value == expires }?.seconds
    }

    package init(
        name: String = "",
        scopes: [String] = [],
        test: Bool = false,
        expires: String = "90",
        errors: [String: String] = [:]
    ) {
        self.name = name
        self.scopes = scopes
        self.test = test
        self.expires = expires
        self.errors = errors
    }

    /// The checkbox field of `scope` (`read:logs` -> `scope_read:logs`).
    package static func field(of scope: String) -> String { "scope_" + scope }

    /// Nil when the form holds a field it never has (a crafted request): refused whole.
    package static func parse(_ fields: FormFields, offered: [String]) -> KeyCreateForm? {
        guard fields.duplicates.isEmpty else { return nil }
        var scopes: [String] = []
        for (name, value) in fields.values where !knownFields.contains(name) {
            guard name.hasPrefix("scope_"), value == "on" || value == "1" else { return nil }
            scopes.append(String(name.dropFirst(6)))
        }
        var form = KeyCreateForm(
            name: (fields["name"] ?? "").trimmingSpaces,
            scopes: scopes.sorted(),
            test: fields["environment"] == "test",
            expires: fields["expires"] ?? ""
        )
        if form.name.isEmpty {
            form.errors["name"] = "Give the key a name."
        } else if form.name.count > maximumNameCharacters
            || form.name.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) })
        {
            form.errors["name"] = "Use at most \(maximumNameCharacters) printable characters."
            // Bounded, yet still too long: the form shown again re-checks it and shows the error.
            form.name = String(form.name.prefix(maximumNameCharacters + 1))
        }
        let unknown = scopes.filter { !Scopes.all.contains($0) }
        let notHeld = scopes.filter { Scopes.all.contains($0) && !offered.contains($0) }
        if !unknown.isEmpty {
            form.errors["scopes"] = "Unknown scope."
        } else if !notHeld.isEmpty {
            form.errors["scopes"] = "You cannot grant \(notHeld.joined(separator: ", ")): you do not hold it."
        } else if scopes.isEmpty {
            form.errors["scopes"] = "Choose at least one scope."
        }
        form.scopes = form.scopes.filter { Scopes.all.contains($0) }
        if fields["environment"] != "live" && fields["environment"] != "test" {
            form.errors["environment"] = "Choose live or test."
        }
        if !expiryChoices.contains(where: { $0.value == form.expires }) {
            form.errors["expires"] = "Choose when the key expires."
            form.expires = "90"
        }
        return form
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        var text = Substring(self)
        while text.first?.isWhitespace == true { text = text.dropFirst() }
        while text.last?.isWhitespace == true { text = text.dropLast() }
        return String(text)
    }
}
