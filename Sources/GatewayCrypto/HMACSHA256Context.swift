import CGatewayOpenSSL

/// An initialised `EVP_MAC_CTX` for HMAC-SHA256 with a fixed key. Owns the context and
/// frees it in `deinit`; not thread-safe: one owner on one event loop.
package final class HMACSHA256Context {
    private let context: OpaquePointer

    init(algorithm: OpaquePointer, key: UnsafeMutableRawBufferPointer) {
        guard let context = EVP_MAC_CTX_new(algorithm) else {
            preconditionFailure("EVP_MAC_CTX_new failed: out of memory")
        }
        let ok: Int32 = HMACDigestParameters.withSHA256 { parameters in
            EVP_MAC_init(context, key.baseAddress, key.count, parameters)
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
