/// Minimal JSON string writing for the handful of fixed-shape documents the gateway emits
/// on hot paths (error bodies, access-log lines), where Foundation's encoder would cost an
/// allocation-heavy detour. Stateless; any thread.
package enum JSONText {
    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Appends `value` as a quoted JSON string, escaping quotes, backslashes and every
    /// control character, so hostile input (header values, paths) cannot break the document.
    package static func appendQuoted(_ value: String, to out: inout String) {
        out.unicodeScalars.append("\"")
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{2028}": out += "\\u2028"
            case "\u{2029}": out += "\\u2029"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += "\\u00"
                    out.unicodeScalars.append(Unicode.Scalar(hexDigits[Int(scalar.value >> 4)]))
                    out.unicodeScalars.append(Unicode.Scalar(hexDigits[Int(scalar.value & 0xF)]))
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out.unicodeScalars.append("\"")
    }

    /// `value` as a quoted JSON string.
    package static func quoted(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count + 2)
        appendQuoted(value, to: &out)
        return out
    }
}
