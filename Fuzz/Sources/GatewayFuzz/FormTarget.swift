import GatewayOAuth
import GatewayPages

/// The two `application/x-www-form-urlencoded` parsers: the OAuth endpoints' strict one
/// (`FormParameters`) and the pages' one (`FormFields`). Where both accept an input without
/// repeated names they must read the same fields; each one's fields, encoded again, must
/// read back the same. Stateless; the fuzzer's thread.
enum FormTarget {
    static func run(_ input: UnsafeBufferPointer<UInt8>) {
        let parameters = try? FormParameters.parse(input)
        let fields = try? FormFields.parse(input).get()
        if let fields {
            invariant(fields.values.count <= FormFields.maximumFields, "kept \(fields.values.count) fields")
            let again = try? FormFields.parse(Array(encode(fields.values).utf8)).get()
            invariant(again == FormFields(values: fields.values), "form fields changed on a round trip")
        }
        if let parameters {
            let names = Set(
                input.split(separator: UInt8(ascii: "&")).compactMap { pair in
                    FormParameters.decode(pair.prefix { $0 != UInt8(ascii: "=") })
                }
            )
            var values: [String: String] = [:]
            for name in names where parameters.contains(name) { values[name] = parameters[name] ?? "" }
            invariant(values.count <= FormParameters.maximumCount, "kept \(values.count) parameters")
            let again = try? FormParameters.parse(Array(encode(values).utf8))
            invariant(again == parameters, "form parameters changed on a round trip")
            if let fields, fields.duplicates.isEmpty {
                invariant(fields.values == values, "FormFields and FormParameters read one form differently")
            }
        }
    }

    static func encode(_ values: [String: String]) -> String {
        values.sorted { $0.key < $1.key }.map { "\(FormFields.encode($0.key))=\(FormFields.encode($0.value))" }
            .joined(separator: "&")
    }
}
