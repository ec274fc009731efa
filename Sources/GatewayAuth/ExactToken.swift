/// A credential as a dictionary key, equal only to the same bytes. Swift's `String`
/// equality (and hashing) treats canonically equivalent strings as one: a token with a
/// Kelvin sign (U+212A) in place of a `K` would find the entry of the token with the `K`.
/// Cache hits must name exactly the credential that was verified. A value; any thread.
struct ExactToken: Hashable, Sendable {
    let token: String

    init(_ token: String) {
        self.token = token
    }

    static func == (lhs: ExactToken, rhs: ExactToken) -> Bool {
        let left = lhs.token.utf8
        let right = rhs.token.utf8
        guard left.count == right.count else { return false }
        let contiguous = left.withContiguousStorageIfAvailable { leftBytes in
            right.withContiguousStorageIfAvailable { rightBytes in
                Self.equal(UnsafeRawBufferPointer(leftBytes), UnsafeRawBufferPointer(rightBytes))
            }
        }
        return (contiguous ?? nil) ?? left.elementsEqual(right)
    }

    /// Two buffers of the same length, eight bytes at a time: a hit compares a whole
    /// token (about 800 bytes for a JWT) on every request, where a byte loop costs more
    /// than the hash.
    private static func equal(_ left: UnsafeRawBufferPointer, _ right: UnsafeRawBufferPointer) -> Bool {
        let count = left.count
        var offset = 0
        while offset + 8 <= count {
            let a = left.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            let b = right.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            if a != b { return false }
            offset += 8
        }
        while offset < count {
            if left[offset] != right[offset] { return false }
            offset += 1
        }
        return true
    }

    func hash(into hasher: inout Hasher) {
        let hashed: Void? = self.token.utf8.withContiguousStorageIfAvailable { bytes in
            hasher.combine(bytes: UnsafeRawBufferPointer(bytes))
        }
        if hashed == nil {
            // The same bytes hash the same however the string stores them.
            Array(self.token.utf8).withUnsafeBytes { hasher.combine(bytes: $0) }
        }
        hasher.combine(self.token.utf8.count)
    }
}
