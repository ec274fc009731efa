/// A JSON value as parsed by `StrictJSON`. Numbers keep their exact integer value when
/// they are integers that fit in `Int64` (JWT NumericDates, `expires_in`), else a `Double`.
package enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    package var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    package var object: JSONObject? {
        if case .object(let value) = self { return value }
        return nil
    }

    package var array: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    /// An integer or a number with an integral part that fits in `Int64` (truncated toward
    /// negative infinity, as NumericDate comparisons need).
    package var numericDate: Int64? {
        switch self {
        case .integer(let value): return value
        case .number(let value):
            guard value.isFinite, value >= -9.2e18, value <= 9.2e18 else { return nil }
            return Int64(value.rounded(.down))
        default: return nil
        }
    }
}
