import CGatewayOpenSSL

/// Cryptographically secure random bytes from OpenSSL's DRBG (`RAND_bytes`).
package enum SecureRandom {
    package static func bytes(_ count: Int) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: count)
        let ok = output.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) }
        precondition(ok == 1, "RAND_bytes failed: the OpenSSL random generator is not seeded")
        return output
    }
}
