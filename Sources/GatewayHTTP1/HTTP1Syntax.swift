/// Byte classes of RFC 9110/9112 and the small checks every HTTP/1 parser here shares.
/// Pure; any thread.
package enum HTTP1Syntax {
    static let cr = UInt8(ascii: "\r")
    static let lf = UInt8(ascii: "\n")
    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")
    static let colon = UInt8(ascii: ":")

    /// tchar: a byte of a token.
    private static let tokenTable: [Bool] = (0..<256).map { value in
        let byte = UInt8(value)
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    @inline(__always)
    static func isToken(_ byte: UInt8) -> Bool {
        tokenTable[Int(byte)]
    }

    /// field-vchar, SP or HTAB: what a field value may hold (obs-text included).
    @inline(__always)
    static func isFieldValueByte(_ byte: UInt8) -> Bool {
        (byte >= 0x20 && byte != 0x7F) || byte == tab
    }

    /// A byte of an origin-form target: visible ASCII but `#`.
    @inline(__always)
    static func isTargetByte(_ byte: UInt8) -> Bool {
        byte > 0x20 && byte < 0x7F && byte != UInt8(ascii: "#")
    }

    @inline(__always)
    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == space || byte == tab
    }

    @inline(__always)
    static func hexValue(_ byte: UInt8) -> UInt64? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt64(byte - 48)
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt64(byte - 87)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt64(byte - 55)
        default: nil
        }
    }

    @inline(__always)
    package static func lowercased(_ byte: UInt8) -> UInt8 {
        byte >= 65 && byte <= 90 ? byte | 0x20 : byte
    }

    /// `bytes[range]` equals `lowercase` (lowercase ASCII) ignoring ASCII case.
    @inline(__always)
    package static func equalsIgnoringCase(
        _ bytes: UnsafeRawBufferPointer,
        _ range: Range<Int>,
        _ lowercase: StaticString
    ) -> Bool {
        guard range.count == lowercase.utf8CodeUnitCount else { return false }
        return lowercase.withUTF8Buffer { expected in
            var index = range.lowerBound
            for byte in expected {
                if lowercased(bytes[index]) != byte { return false }
                index += 1
            }
            return true
        }
    }

    /// `bytes[range]` starts with `lowercase` ignoring ASCII case.
    @inline(__always)
    package static func hasPrefixIgnoringCase(
        _ bytes: UnsafeRawBufferPointer,
        _ range: Range<Int>,
        _ lowercase: [UInt8]
    )
        -> Bool
    {
        guard range.count >= lowercase.count else { return false }
        var index = range.lowerBound
        for byte in lowercase {
            if lowercased(bytes[index]) != byte { return false }
            index += 1
        }
        return true
    }

    /// `range` without leading and trailing SP/HTAB.
    @inline(__always)
    package static func trimmed(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Range<Int> {
        var lower = range.lowerBound
        var upper = range.upperBound
        while lower < upper, isWhitespace(bytes[lower]) { lower += 1 }
        while upper > lower, isWhitespace(bytes[upper - 1]) { upper -= 1 }
        return lower..<upper
    }

    /// `host[:port]` where host is a reg-name, IPv4 or `[IPv6]`, the port 1 to 5 digits.
    static func isValidHost(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        guard !range.isEmpty, range.count <= 261 else { return false }
        var index = range.lowerBound
        if bytes[index] == UInt8(ascii: "[") {
            index += 1
            let start = index
            while index < range.upperBound, bytes[index] != UInt8(ascii: "]") {
                let byte = bytes[index]
                guard hexValue(byte) != nil || byte == colon || byte == UInt8(ascii: ".") else { return false }
                index += 1
            }
            guard index < range.upperBound, index > start else { return false }
            index += 1
        } else {
            let start = index
            while index < range.upperBound, bytes[index] != colon {
                switch bytes[index] {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                    UInt8(ascii: "~"):
                    index += 1
                default:
                    return false
                }
            }
            guard index > start else { return false }
        }
        if index == range.upperBound { return true }
        guard bytes[index] == colon else { return false }
        let port = (index + 1)..<range.upperBound
        guard !port.isEmpty, port.count <= 5 else { return false }
        for position in port where bytes[position] < 48 || bytes[position] > 57 {
            return false
        }
        return true
    }

    /// A decimal length of 1 to 18 digits (so it fits `Int64`); nil otherwise.
    static func decimalLength(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int64? {
        guard !range.isEmpty, range.count <= 18 else { return nil }
        var value: Int64 = 0
        for index in range {
            let byte = bytes[index]
            guard byte >= 48, byte <= 57 else { return nil }
            value = value * 10 + Int64(byte - 48)
        }
        return value
    }
}
