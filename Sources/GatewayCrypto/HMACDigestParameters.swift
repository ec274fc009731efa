import CGatewayOpenSSL

/// The `OSSL_PARAM` list that selects SHA-256 as the digest of an HMAC `EVP_MAC_CTX`.
///
/// Stateless; any thread. `OSSL_PARAM` keeps the name and value pointers it is given rather
/// than copying them, so both must outlive the `EVP_MAC_init` call that reads the list. A Swift
/// string argument converted to a C pointer lives only for the call it is passed to (an
/// `OSSL_PARAM_construct_*` call), which left the list pointing at freed memory
/// (AddressSanitizer caught it); static strings live for the whole process.
enum HMACDigestParameters {
    private static let digestKey: StaticString = "digest"
    private static let sha256: StaticString = "SHA256"

    /// Calls `body` with a terminated parameter list selecting SHA-256.
    static func withSHA256<Result>(_ body: (UnsafeMutablePointer<OSSL_PARAM>) -> Result) -> Result {
        var parameters = [
            OSSL_PARAM_construct_utf8_string(Self.pointer(Self.digestKey), Self.pointer(Self.sha256), 0),
            OSSL_PARAM_construct_end(),
        ]
        return parameters.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
    }

    /// OpenSSL only reads a name or a value given for `init`; the mutable pointer type is its C signature's.
    private static func pointer(_ string: StaticString) -> UnsafeMutablePointer<CChar> {
        UnsafeMutablePointer(mutating: UnsafeRawPointer(string.utf8Start).assumingMemoryBound(to: CChar.self))
    }
}
