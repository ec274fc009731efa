/// The fields of an `application/x-www-form-urlencoded` text (a query string or a form
/// body), decoded strictly: `%XX` escapes must be complete hex, the result must be UTF-8,
/// control characters are refused. A name given twice is recorded in `duplicates` (its
/// first value is kept) so each caller decides how to refuse it. A value; any thread.
package struct FormFields: Sendable, Equatable {
    package var values: [String: String] = [:]
    package var duplicates: Set<String> = []

    package enum Failure: Error, Equatable {
        case malformed
        case tooLarge
    }

    package static let maximumFields = 64

    package init(values: [String: String] = [:], duplicates: Set<String> = []) {
        self.values = values
        self.duplicates = duplicates
    }

    package subscript(_ name: String) -> String? { self.values[name] }

    /// Parses `text`; empty pairs (`a=1&&b=2`) are skipped, a pair without `=` has an empty
    /// value.
    package static func parse(
        _ text: some Collection<UInt8>,
        maximumBytes: Int = 16 * 1024
    ) -> Result<FormFields, Failure> {
        guard text.count <= maximumBytes else { return .failure(.tooLarge) }
        var fields = FormFields()
        var count = 0
        for pair in text.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            count += 1
            guard count <= maximumFields else { return .failure(.tooLarge) }
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = decode(parts[0]), !name.isEmpty, let value = parts.count == 2 ? decode(parts[1]) : ""
            else {
                return .failure(.malformed)
            }
            if fields.values[name] != nil {
                fields.duplicates.insert(name)
            } else {
                fields.values[name] = value
            }
        }
        return .success(fields)
    }

    /// One component decoded: `+` is a space, `%XX` a byte; nil when malformed, not UTF-8
    /// or holding control characters.
    package static func decode(_ component: some Collection<UInt8>) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(component.count)
        var iterator = component.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"):
                bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    return nil
                }
                bytes.append(high << 4 | low)
            default:
                bytes.append(byte)
            }
        }
        guard !bytes.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { return nil }
        guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
        return text
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// `value` with every byte outside the unreserved set (RFC 3986 §2.3) percent-encoded:
    /// safe in a query component and in a form.
    package static func encode(_ value: String) -> String {
        let hex: [UInt8] = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for byte in value.utf8 {
            if isUnreserved(byte) {
                out.append(byte)
            } else {
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    package static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            true
        default: false
        }
    }
}
