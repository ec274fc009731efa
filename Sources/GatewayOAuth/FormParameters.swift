/// `application/x-www-form-urlencoded` parameters (the body of every OAuth endpoint),
/// parsed strictly: at most `maximumCount` pairs, names and values of bounded size,
/// percent-escapes that are complete hex and decode to UTF-8, no control characters, and
/// every name at most once (RFC 6749 §3.1, §3.2: a repeated parameter is refused, never
/// resolved by picking one). A parameter sent with an empty value counts as omitted
/// (RFC 6749 §3.1). A value; any thread.
package struct FormParameters: Sendable, Equatable {
    package static let maximumCount = 32
    package static let maximumValueBytes = 4096

    package enum Failure: Error, Equatable, CustomStringConvertible {
        case tooMany
        case malformed(String)
        case duplicate(String)

        package var description: String {
            switch self {
            case .tooMany: return "the request has more than \(FormParameters.maximumCount) parameters"
            case .malformed(let why): return why
            case .duplicate(let name): return "the parameter \(name) is repeated; send each parameter once"
            }
        }
    }

    private var values: [String: String]

    package init(_ values: [String: String] = [:]) {
        self.values = values
    }

    /// The parameter `name`, or nil when absent or empty.
    package subscript(name: String) -> String? {
        guard let value = self.values[name], !value.isEmpty else { return nil }
        return value
    }

    /// Whether `name` was sent (even empty).
    package func contains(_ name: String) -> Bool { self.values[name] != nil }

    package static func parse(_ body: some Collection<UInt8>) throws(Failure) -> FormParameters {
        var values: [String: String] = [:]
        guard !body.isEmpty else { return FormParameters() }
        var count = 0
        let bytes = Array(body)
        for pair in bytes.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: false) {
            if pair.isEmpty { continue }
            count += 1
            guard count <= maximumCount else { throw .tooMany }
            let equals = pair.firstIndex(of: UInt8(ascii: "="))
            let rawName = equals.map { pair[pair.startIndex..<$0] } ?? pair[...]
            let rawValue = equals.map { pair[pair.index(after: $0)...] } ?? pair[pair.endIndex...]
            guard let name = decode(rawName), !name.isEmpty, name.utf8.count <= 128 else {
                throw .malformed("a parameter name is empty, too long or not valid percent-encoded UTF-8")
            }
            guard let value = decode(rawValue) else {
                throw .malformed("the value of \(printable(name)) is not valid percent-encoded UTF-8")
            }
            guard value.utf8.count <= maximumValueBytes else {
                throw .malformed("the value of \(printable(name)) is longer than \(maximumValueBytes) bytes")
            }
            guard values[name] == nil else { throw .duplicate(printable(name)) }
            values[name] = value
        }
        return FormParameters(values)
    }

    /// Percent-decoding with `+` as space (HTML form encoding); nil for a broken escape,
    /// bytes that are not UTF-8, or a control character.
    package static func decode(_ raw: some Collection<UInt8>) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(raw.count)
        var iterator = raw.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"):
                bytes.append(0x20)
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    return nil
                }
                bytes.append(high << 4 | low)
            default:
                bytes.append(byte)
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
        guard !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return nil }
        return text
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// A parameter name for an error message: short and harmless.
    private static func printable(_ name: String) -> String {
        String(
            name.unicodeScalars.filter { $0.isASCII && $0.value > 0x20 && $0.value < 0x7F && $0 != "\"" }.prefix(40)
                .map(Character.init)
        )
    }
}
