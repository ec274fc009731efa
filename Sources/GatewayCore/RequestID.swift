/// Request ids: which incoming `X-Request-Id` values are kept, and how new ones are minted.
///
/// `RequestIDGenerator` is a value owned by one connection handler (one event loop); it is
/// seeded once from the system generator so minting an id costs no system call.
package enum RequestID {
    /// Longest incoming id the gateway keeps; longer ones are replaced.
    package static let maximumLength = 128

    /// Whether an incoming `X-Request-Id` is safe to keep and forward: 1...128 characters
    /// of `A-Z a-z 0-9 - _ . : @ + =`. Anything else (spaces, quotes, control
    /// characters, non-ASCII) is replaced so it cannot inject into logs or headers.
    package static func isValid(_ value: String) -> Bool {
        let utf8 = value.utf8
        guard !utf8.isEmpty, utf8.count <= maximumLength else { return false }
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"),
                UInt8(ascii: "@"), UInt8(ascii: "+"), UInt8(ascii: "="):
                continue
            default:
                return false
            }
        }
        return true
    }
}

/// Mints 128-bit random request ids rendered as 32 lowercase hex characters.
///
/// A xoshiro256** stream seeded from `SystemRandomNumberGenerator`: ids are unique and
/// unpredictable enough for correlation (they are not secrets). Not thread-safe: each
/// owner (a connection handler) keeps its own.
package struct RequestIDGenerator: Sendable {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    package init() {
        var system = SystemRandomNumberGenerator()
        self.init(seed: (system.next(), system.next(), system.next(), system.next()))
    }

    package init(seed: (UInt64, UInt64, UInt64, UInt64)) {
        // An all-zero state would emit zeros forever.
        if seed == (0, 0, 0, 0) {
            self.state = (0x9E37_79B9_7F4A_7C15, 1, 2, 3)
        } else {
            self.state = seed
        }
    }

    private mutating func nextWord() -> UInt64 {
        let result = rotl(self.state.1 &* 5, 7) &* 9
        let t = self.state.1 << 17
        self.state.2 ^= self.state.0
        self.state.3 ^= self.state.1
        self.state.1 ^= self.state.2
        self.state.0 ^= self.state.3
        self.state.2 ^= t
        self.state.3 = rotl(self.state.3, 45)
        return result
    }

    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 {
        (x << k) | (x >> (64 - k))
    }

    /// A uniformly distributed number in [0, 1), for sampling decisions.
    package mutating func nextUnitInterval() -> Double {
        Double(self.nextWord() >> 11) * 0x1.0p-53
    }

    /// A new id: 32 lowercase hex characters.
    package mutating func next() -> String {
        let high = self.nextWord()
        let low = self.nextWord()
        return String(unsafeUninitializedCapacity: 32) { buffer in
            let digits: StaticString = "0123456789abcdef"
            digits.withUTF8Buffer { hex in
                for i in 0..<16 {
                    buffer[i] = hex[Int((high >> UInt64(60 - 4 * i)) & 0xF)]
                    buffer[16 + i] = hex[Int((low >> UInt64(60 - 4 * i)) & 0xF)]
                }
            }
            return 32
        }
    }
}
