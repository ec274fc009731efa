/// The identity header fields the upstream gets for one principal (`X-DBAudit-Subject`,
/// `-Scopes`, `-Credential`, `-Client-Id`, `-Key-Id`, `-Issuer`), built and sanitized once
/// when the principal is made (a cached principal serves many requests) instead of per
/// request. Both as (name, value) pairs and as the serialized field lines. Immutable; any
/// thread.
package struct IdentityHeaders: Sendable, Hashable {
    /// The fields in the order they are sent; every value free of control characters.
    package let fields: [(name: String, value: String)]
    /// `fields` as field lines, `Name: value\r\n` each, ready to copy into a head.
    package let lines: [UInt8]

    package init(of principal: Principal) {
        self.init(
            subject: principal.subject,
            kind: principal.kind,
            scopes: principal.scopes,
            clientID: principal.clientID,
            keyID: principal.keyID,
            issuer: principal.issuer
        )
    }

    init(
        subject: String,
        kind: Principal.CredentialKind,
        scopes: [String],
        clientID: String?,
        keyID: String?,
        issuer: String?
    ) {
        var fields: [(name: String, value: String)] = []
        fields.reserveCapacity(6)
        // Identity values come from the store or a token: never let one carry a line break
        // or another control character into the upstream head.
        fields.append(("X-DBAudit-Subject", Self.sanitized(subject)))
        fields.append(("X-DBAudit-Scopes", Self.sanitized(scopes.joined(separator: " "))))
        fields.append(("X-DBAudit-Credential", kind.rawValue))
        if let clientID {
            fields.append(("X-DBAudit-Client-Id", Self.sanitized(clientID)))
        }
        if let keyID {
            fields.append(("X-DBAudit-Key-Id", Self.sanitized(keyID)))
        }
        if let issuer {
            // A subject is unique only within its issuer: say which one vouched for it.
            fields.append(("X-DBAudit-Issuer", Self.sanitized(issuer)))
        }
        var lines: [UInt8] = []
        lines.reserveCapacity(fields.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 4 })
        for (name, value) in fields {
            lines.append(contentsOf: name.utf8)
            lines.append(UInt8(ascii: ":"))
            lines.append(UInt8(ascii: " "))
            lines.append(contentsOf: value.utf8)
            lines.append(UInt8(ascii: "\r"))
            lines.append(UInt8(ascii: "\n"))
        }
        self.fields = fields
        self.lines = lines
    }

    /// `value` with every control character (CR, LF, NUL, DEL, ...) replaced by a space.
    package static func sanitized(_ value: String) -> String {
        guard value.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { return value }
        return String(decoding: value.utf8.map { $0 < 0x20 || $0 == 0x7F ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
    }

    // The lines say everything the fields do (names are fixed, values hold no line break).
    package static func == (lhs: IdentityHeaders, rhs: IdentityHeaders) -> Bool {
        lhs.lines == rhs.lines
    }

    package func hash(into hasher: inout Hasher) {
        hasher.combine(self.lines)
    }
}
