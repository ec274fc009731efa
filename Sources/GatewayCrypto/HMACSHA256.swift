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
        let ok: Bool = HMACDigestParameters.withSHA256 { parameters in
            guard EVP_MAC_init(context, self.key.baseAddress, self.key.count, parameters) == 1 else { return false }
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
