import GatewayCore

/// Writing a `JSONValue` back as compact JSON text, members in their order, strings escaped
/// by `JSONText`: the documents the gateway signs or publishes (JWT headers and claims, the
/// JWKS) are built as values, never spliced together by hand.
extension JSONValue {
    /// Compact JSON text. A non-finite number (which JSON cannot express) is written as null.
    package var jsonText: String {
        var out = ""
        self.append(to: &out)
        return out
    }

    package func append(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let value): out += value ? "true" : "false"
        case .integer(let value): out += String(value)
        case .number(let value): out += value.isFinite ? "\(value)" : "null"
        case .string(let value): JSONText.appendQuoted(value, to: &out)
        case .array(let values):
            out += "["
            for (index, value) in values.enumerated() {
                if index > 0 { out += "," }
                value.append(to: &out)
            }
            out += "]"
        case .object(let object): object.append(to: &out)
        }
    }
}

extension JSONObject {
    /// Compact JSON text of the object, members in their order.
    package var jsonText: String { JSONValue.object(self).jsonText }

    package func append(to out: inout String) {
        out += "{"
        for (index, member) in self.members.enumerated() {
            if index > 0 { out += "," }
            JSONText.appendQuoted(member.name, to: &out)
            out += ":"
            member.value.append(to: &out)
        }
        out += "}"
    }
}
