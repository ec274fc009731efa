import CGatewayOpenSSL

/// HMAC-SHA256 keyed with a fixed secret (the API-key pepper), through OpenSSL 3's
/// `EVP_MAC`.
///
/// The `EVP_MAC` algorithm is fetched once per process (a fetch per call costs a provider
/// lookup). The key is copied into memory this object owns and wiped on
/// `deinit`. `EVP_MAC` is immutable and thread-safe; each call makes its own context, so
/// one instance may be shared by every event loop.
package final class HMACSHA256: @unchecked Sendable {
    nonisolated(unsafe) private static let algorithm: OpaquePointer = {
        guard let mac = EVP_MAC_fetch(nil, "HMAC", nil) else {
            preconditionFailure("OpenSSL has no HMAC; the host's libcrypto is unusable")
        }
        return mac
    }()

    private let key: UnsafeMutableRawBufferPointer

    /// - Parameter key: the secret; at least 1 byte.
    package init(key: [UInt8]) {
        precondition(!key.isEmpty, "an HMAC key must not be empty")
        self.key = UnsafeMutableRawBufferPointer.allocate(byteCount: key.count, alignment: 1)
        self.key.copyBytes(from: key)
    }

    deinit {
        OPENSSL_cleanse(self.key.baseAddress, self.key.count)
        self.key.deallocate()
    }

    /// The 32-byte MAC of `message`.
    package func authenticationCode(for message: some Collection<UInt8>) -> [UInt8] {
        guard let context = EVP_MAC_CTX_new(Self.algorithm) else {
            preconditionFailure("EVP_MAC_CTX_new failed: out of memory")
        }
        defer { EVP_MAC_CTX_free(context) }
        var output = [UInt8](repeating: 0, count: 32)
        var written = 0
        let input = Array(message)
        let ok: Bool = "SHA256".withCString { digestName in
            var params = [
                OSSL_PARAM_construct_utf8_string("digest", UnsafeMutablePointer(mutating: digestName), 0),
                OSSL_PARAM_construct_end(),
            ]
            guard EVP_MAC_init(context, self.key.baseAddress, self.key.count, &params) == 1 else { return false }
            let updated = input.withUnsafeBufferPointer { EVP_MAC_update(context, $0.baseAddress, $0.count) }
            guard updated == 1 else { return false }
            return output.withUnsafeMutableBufferPointer {
                EVP_MAC_final(context, $0.baseAddress, &written, $0.count) == 1
            }
        }
        precondition(ok && written == 32, "HMAC-SHA256 failed inside OpenSSL")
        return output
    }

    /// A context for one thread (event loop) that keeps the keyed state, so each MAC costs
    /// one init-with-the-same-key, update and final: no allocation of an OpenSSL context
    /// per call.
    package func makeContext() -> HMACSHA256Context {
        HMACSHA256Context(algorithm: Self.algorithm, key: self.key)
    }

    /// Compares two byte strings in time independent of where they differ.
    package static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in
                CRYPTO_memcmp(pa.baseAddress, pb.baseAddress, a.count) == 0
            }
        }
    }
}

/// An initialised `EVP_MAC_CTX` for HMAC-SHA256 with a fixed key. Owns the context and
/// frees it in `deinit`; not thread-safe: one owner on one event loop.
package final class HMACSHA256Context {
    private let context: OpaquePointer

    fileprivate init(algorithm: OpaquePointer, key: UnsafeMutableRawBufferPointer) {
        guard let context = EVP_MAC_CTX_new(algorithm) else {
            preconditionFailure("EVP_MAC_CTX_new failed: out of memory")
        }
        let ok: Int32 = "SHA256".withCString { digestName in
            var params = [
                OSSL_PARAM_construct_utf8_string("digest", UnsafeMutablePointer(mutating: digestName), 0),
                OSSL_PARAM_construct_end(),
            ]
            return EVP_MAC_init(context, key.baseAddress, key.count, &params)
        }
        precondition(ok == 1, "EVP_MAC_init failed for HMAC-SHA256")
        self.context = context
    }

    deinit {
        EVP_MAC_CTX_free(self.context)
    }

    /// The 32-byte MAC of `message`, as lowercase hex.
    package func hexAuthenticationCode(for message: String) -> String {
        var output = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        var written = 0
        var message = message
        let ok = message.withUTF8 { bytes -> Bool in
            // A NULL key re-initialises with the key already set (OpenSSL 3 EVP_MAC_init).
            guard EVP_MAC_init(self.context, nil, 0, nil) == 1,
                EVP_MAC_update(self.context, bytes.baseAddress, bytes.count) == 1
            else { return false }
            return withUnsafeMutableBytes(of: &output) { raw in
                EVP_MAC_final(self.context, raw.baseAddress?.assumingMemoryBound(to: UInt8.self), &written, 32) == 1
            }
        }
        precondition(ok && written == 32, "HMAC-SHA256 failed inside OpenSSL")
        return withUnsafeBytes(of: &output) { Hex.encode($0) }
    }
}

/// Cryptographically secure random bytes from OpenSSL's DRBG (`RAND_bytes`).
package enum SecureRandom {
    package static func bytes(_ count: Int) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: count)
        let ok = output.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) }
        precondition(ok == 1, "RAND_bytes failed: the OpenSSL random generator is not seeded")
        return output
    }
}

/// Lowercase hexadecimal.
package enum Hex {
    package static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
