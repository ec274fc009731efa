/// The token of an `Authorization: Bearer <token68>` header (RFC 6750 §2.1), and what the
/// one pass that checked its alphabet also learned about its shape, so the request path
/// reads the header's bytes once: no later scan to tell a JWT from an API key. A value;
/// any thread.
package struct BearerCredential: Equatable, Sendable {
    /// What the token's prefix and separators say it claims to be (claims only: each kind
    /// is checked in full by its own authenticator).
    package enum Shape: Equatable, Sendable {
        /// `dbaudit_live_` or `dbaudit_test_`.
        case apiKey
        /// `dbaudit_at_`.
        case opaqueAccessToken
        /// Exactly two dots: three parts, as a JWS compact serialization has.
        case threeParts
        case other
    }

    package var token: String
    package var shape: Shape

    /// Longest header accepted, scheme included.
    package static let maximumHeaderLength = 8192

    /// The credential of one `Authorization` value: scheme `Bearer` in any case, one space
    /// (further spaces before the token are skipped), then one or more token68 characters
    /// and nothing else; nil otherwise.
    package static func parse(_ header: String) -> BearerCredential? {
        if let parsed = header.utf8.withContiguousStorageIfAvailable({ Self.parse(bytes: $0) }) {
            return parsed
        }
        return Array(header.utf8).withUnsafeBufferPointer { Self.parse(bytes: $0) }
    }

    /// `parse(_:)` over the header's bytes.
    package static func parse(bytes: UnsafeBufferPointer<UInt8>) -> BearerCredential? {
        let count = bytes.count
        guard count > 7, count <= Self.maximumHeaderLength else { return nil }
        // Case-insensitive "bearer": setting 0x20 maps only A-Z onto a-z among the bytes
        // that can then equal a lowercase letter.
        guard bytes[0] | 0x20 == UInt8(ascii: "b"), bytes[1] | 0x20 == UInt8(ascii: "e"),
            bytes[2] | 0x20 == UInt8(ascii: "a"), bytes[3] | 0x20 == UInt8(ascii: "r"),
            bytes[4] | 0x20 == UInt8(ascii: "e"), bytes[5] | 0x20 == UInt8(ascii: "r"),
            bytes[6] == UInt8(ascii: " ")
        else { return nil }
        var start = 7
        while start < count, bytes[start] == UInt8(ascii: " ") { start += 1 }
        guard start < count else { return nil }
        guard let base = bytes.baseAddress, let dots = Self.token68Dots(base + start, count: count - start) else {
            return nil
        }
        let token = UnsafeBufferPointer(rebasing: bytes[start..<count])
        let shape: Shape
        if Self.starts(token, with: Self.liveKeyPrefix) || Self.starts(token, with: Self.testKeyPrefix) {
            shape = .apiKey
        } else if Self.starts(token, with: Self.opaquePrefix) {
            shape = .opaqueAccessToken
        } else {
            shape = dots == 2 ? .threeParts : .other
        }
        return BearerCredential(token: String(decoding: token, as: UTF8.self), shape: shape)
    }

    /// The number of dots in `count` bytes at `base`, nil when one byte is outside the
    /// token68 alphabet (A-Z a-z 0-9 - . _ ~ + / =). A table lookup and an addition per
    /// byte, eight bytes a step, no branch per byte: a JWT is hundreds of bytes, and a
    /// test and a branch per byte cost ~20 instructions a byte. Every byte is read (no
    /// early exit), which the length bound keeps cheap for a refused header too.
    @inline(__always)
    private static func token68Dots(_ base: UnsafePointer<UInt8>, count: Int) -> Int? {
        Self.token68Classes.withUnsafeBufferPointer { classes in
            var sum: UInt32 = 0
            var index = 0
            while count &- index >= 8 {
                sum &+= classes[Int(base[index])] &+ classes[Int(base[index &+ 1])]
                sum &+= classes[Int(base[index &+ 2])] &+ classes[Int(base[index &+ 3])]
                sum &+= classes[Int(base[index &+ 4])] &+ classes[Int(base[index &+ 5])]
                sum &+= classes[Int(base[index &+ 6])] &+ classes[Int(base[index &+ 7])]
                index &+= 8
            }
            while index < count {
                sum &+= classes[Int(base[index])]
                index &+= 1
            }
            return sum &>> Self.outsideShift == 0 ? Int(sum) : nil
        }
    }

    /// What each byte adds to `token68Dots`'s sum: 1 for a dot, 0 for another token68
    /// byte, `1 << outsideShift` for any other byte. The bound on the header's length
    /// keeps both counts apart: at most 8192 dots stay below bit 16, at most 8192 refused
    /// bytes below bit 32.
    private static let token68Classes: [UInt32] = (0...255).map { byte in
        guard Self.isToken68(UInt8(byte)) else { return 1 << Self.outsideShift }
        return byte == Int(UInt8(ascii: ".")) ? 1 : 0
    }
    private static let outsideShift: UInt32 = 16

    /// The token68 alphabet as a bit per ASCII byte (the table above is built from it).
    private static let token68Low: UInt64 = 0x23ff_e800_0000_0000
    private static let token68High: UInt64 = 0x47ff_fffe_87ff_fffe

    @inline(__always)
    private static func isToken68(_ byte: UInt8) -> Bool {
        if byte < 64 { return (Self.token68Low &>> UInt64(byte)) & 1 == 1 }
        if byte < 128 { return (Self.token68High &>> UInt64(byte &- 64)) & 1 == 1 }
        return false
    }

    private static let liveKeyPrefix: StaticString = "dbaudit_live_"
    private static let testKeyPrefix: StaticString = "dbaudit_test_"
    private static let opaquePrefix: StaticString = "dbaudit_at_"

    private static func starts(_ bytes: UnsafeBufferPointer<UInt8>, with prefix: StaticString) -> Bool {
        let length = prefix.utf8CodeUnitCount
        guard bytes.count >= length else { return false }
        let expected = prefix.utf8Start
        for index in 0..<length where bytes[index] != expected[index] { return false }
        return true
    }
}
