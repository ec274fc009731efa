import CGatewayOpenSSL

/// Message digests through the host's OpenSSL 3 (`EVP_Digest*`).
///
/// The `EVP_MD` is fetched once per algorithm and kept (`EVP_MD_fetch` per call costs a
/// provider lookup). `EVP_MD` objects are immutable and thread-safe in OpenSSL 3, so the
/// shared instances may be used from any thread.
package struct Digest: Sendable {
    /// A fetched `EVP_MD`, freed never: the few algorithms live for the whole process.
    private final class Algorithm: @unchecked Sendable {
        let md: OpaquePointer
        let size: Int

        init(name: String) {
            guard let md = EVP_MD_fetch(nil, name, nil) else {
                preconditionFailure("OpenSSL has no \(name) digest; the host's libcrypto is unusable")
            }
            self.md = md
            self.size = Int(EVP_MD_get_size(md))
        }
    }

    private static let sha256Algorithm = Algorithm(name: "SHA256")

    private let algorithm: Algorithm

    /// SHA-256 (FIPS 180-4).
    package static let sha256 = Digest(algorithm: sha256Algorithm)

    private init(algorithm: Algorithm) {
        self.algorithm = algorithm
    }

    /// Bytes of one digest.
    package var outputSize: Int { self.algorithm.size }

    /// The digest of `bytes`.
    package func hash(_ bytes: some Collection<UInt8>) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let input = Array(bytes)
        let ok = input.withUnsafeBytes { inputPointer in
            output.withUnsafeMutableBytes { outputPointer in
                EVP_Digest(
                    inputPointer.baseAddress,
                    inputPointer.count,
                    outputPointer.baseAddress?.assumingMemoryBound(to: UInt8.self),
                    &length,
                    self.algorithm.md,
                    nil
                )
            }
        }
        precondition(ok == 1, "EVP_Digest failed on a fetched digest")
        return Array(output.prefix(Int(length)))
    }
}

/// The OpenSSL library the process is linked against.
package enum OpenSSLLibrary {
    /// E.g. `OpenSSL 3.0.19 27 Jan 2026`.
    package static var version: String {
        String(cString: OpenSSL_version(Int32(OPENSSL_VERSION)))
    }
}
