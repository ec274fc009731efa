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

    /// Two buffers of the same length, 32 bytes a step: every byte is compared whatever
    /// the first difference (no early exit, so the time says nothing about how much of a
    /// guess matched a cached credential), without a branch per word. A hit compares a
    /// whole token (about 800 bytes for a JWT) on every request.
    private static func equal(_ left: UnsafeRawBufferPointer, _ right: UnsafeRawBufferPointer) -> Bool {
        let count = left.count
        guard count > 0, let leftBase = left.baseAddress, let rightBase = right.baseAddress else { return true }
        var difference: UInt64 = 0
        var offset = 0
        while count &- offset >= 32 {
            let a0 = leftBase.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            let a1 = leftBase.loadUnaligned(fromByteOffset: offset &+ 8, as: UInt64.self)
            let a2 = leftBase.loadUnaligned(fromByteOffset: offset &+ 16, as: UInt64.self)
            let a3 = leftBase.loadUnaligned(fromByteOffset: offset &+ 24, as: UInt64.self)
            let b0 = rightBase.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            let b1 = rightBase.loadUnaligned(fromByteOffset: offset &+ 8, as: UInt64.self)
            let b2 = rightBase.loadUnaligned(fromByteOffset: offset &+ 16, as: UInt64.self)
            let b3 = rightBase.loadUnaligned(fromByteOffset: offset &+ 24, as: UInt64.self)
            difference |= (a0 ^ b0) | (a1 ^ b1) | (a2 ^ b2) | (a3 ^ b3)
            offset &+= 32
        }
        while count &- offset >= 8 {
            let a = leftBase.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            let b = rightBase.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            difference |= a ^ b
            offset &+= 8
        }
        while offset < count {
            difference |= UInt64(left[offset] ^ right[offset])
            offset &+= 1
        }
        return difference == 0
    }

    /// The last `hashedSuffix` bytes and the length: a token's end is what tells cached
    /// credentials apart (a JWT's signature, an API key's random part and checksum), and
    /// seeding hashes 800 bytes of a JWT cost more than the rest of a cache hit. Only
    /// verified credentials are ever stored, and their ends cannot be chosen, so a shared
    /// suffix cannot crowd a bucket; equality still compares every byte.
    func hash(into hasher: inout Hasher) {
        let hashed: Void? = self.token.utf8.withContiguousStorageIfAvailable { bytes in
            hasher.combine(bytes: Self.suffix(UnsafeRawBufferPointer(bytes)))
        }
        if hashed == nil {
            // The same bytes hash the same however the string stores them.
            Array(self.token.utf8).withUnsafeBytes { hasher.combine(bytes: Self.suffix($0)) }
        }
        hasher.combine(self.token.utf8.count)
    }

    static let hashedSuffix = 32

    private static func suffix(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[max(0, bytes.count - Self.hashedSuffix)...])
    }
}
