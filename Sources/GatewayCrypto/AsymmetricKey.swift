import CGatewayOpenSSL

/// Why a key could not be built or used. Carries no key material, so it may be logged.
package struct CryptoKeyError: Error, Equatable, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }
}

/// The signature algorithms of JWS (RFC 7518 §3, RFC 8037) the gateway implements, each
/// bound to exactly one key type, digest and padding.
package enum SignatureAlgorithm: String, Sendable, Hashable, CaseIterable {
    case rs256 = "RS256"
    case rs384 = "RS384"
    case rs512 = "RS512"
    case ps256 = "PS256"
    case ps384 = "PS384"
    case ps512 = "PS512"
    case es256 = "ES256"
    case es384 = "ES384"
    case edDSA = "EdDSA"
    case hs256 = "HS256"
    case hs384 = "HS384"
    case hs512 = "HS512"

    /// The OpenSSL digest name, or nil for EdDSA (Ed25519 hashes internally).
    package var digestName: String? {
        switch self {
        case .rs256, .ps256, .es256, .hs256: "SHA256"
        case .rs384, .ps384, .es384, .hs384: "SHA384"
        case .rs512, .ps512, .hs512: "SHA512"
        case .edDSA: nil
        }
    }

    package var isSymmetric: Bool {
        switch self {
        case .hs256, .hs384, .hs512: true
        default: false
        }
    }

    /// The curve an ES algorithm is defined on, and the byte length of r and of s.
    package var ecCurve: (name: String, scalarBytes: Int)? {
        switch self {
        case .es256: ("P-256", 32)
        case .es384: ("P-384", 48)
        default: nil
        }
    }

    /// Shortest HMAC key accepted: the digest's output size (RFC 7518 §3.2).
    package var minimumSymmetricKeyBytes: Int {
        switch self {
        case .hs256: 32
        case .hs384: 48
        case .hs512: 64
        default: 0
        }
    }
}

/// An OpenSSL `EVP_PKEY` (RSA, EC P-256/P-384 or Ed25519), public or a key pair. Owns the
/// key and frees it in `deinit`. Immutable after construction; OpenSSL 3 allows one
/// `EVP_PKEY` to be used by several threads at once for verification and signing, so an
/// instance may be shared by every event loop.
package final class AsymmetricKey: @unchecked Sendable {
    package enum Kind: Sendable, Equatable {
        case rsa(bits: Int)
        case ec(curve: String)
        case ed25519
    }

    let pkey: OpaquePointer
    package let kind: Kind
    package let hasPrivateKey: Bool

    private init(pkey: OpaquePointer, hasPrivateKey: Bool) throws {
        self.pkey = pkey
        self.hasPrivateKey = hasPrivateKey
        if EVP_PKEY_is_a(pkey, "RSA") == 1 {
            self.kind = .rsa(bits: Int(EVP_PKEY_get_bits(pkey)))
        } else if EVP_PKEY_is_a(pkey, "EC") == 1 {
            var name = [CChar](repeating: 0, count: 64)
            var length = 0
            guard EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, &name, name.count, &length) == 1
            else {
                EVP_PKEY_free(pkey)
                throw CryptoKeyError("EC key without a named curve")
            }
            let curve = String(decoding: name.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            switch curve {
            case "prime256v1", "P-256": self.kind = .ec(curve: "P-256")
            case "secp384r1", "P-384": self.kind = .ec(curve: "P-384")
            default:
                EVP_PKEY_free(pkey)
                throw CryptoKeyError("unsupported EC curve \(curve)")
            }
        } else if EVP_PKEY_is_a(pkey, "ED25519") == 1 {
            self.kind = .ed25519
        } else {
            EVP_PKEY_free(pkey)
            throw CryptoKeyError("unsupported key type")
        }
    }

    deinit {
        EVP_PKEY_free(self.pkey)
    }

    // MARK: Construction

    /// An RSA public key from its big-endian modulus and exponent (JWK `n`, `e`).
    /// Refuses moduli under 2048 bits and exponents that are even or below 3.
    package static func rsaPublicKey(modulus: [UInt8], exponent: [UInt8]) throws -> AsymmetricKey {
        let n = modulus.drop { $0 == 0 }
        let e = exponent.drop { $0 == 0 }
        guard n.count * 8 >= 2041, n.count <= 2048 else {
            throw CryptoKeyError("RSA modulus must be 2048 to 16384 bits")
        }
        guard let lastE = e.last, lastE & 1 == 1, e.count <= 8, !(e.count == 1 && e.first! < 3) else {
            throw CryptoKeyError("RSA public exponent must be odd and at least 3")
        }
        guard let nBN = bignum(Array(n)), let eBN = bignum(Array(e)) else {
            throw CryptoKeyError("RSA parameters could not be converted")
        }
        defer {
            BN_free(nBN)
            BN_free(eBN)
        }
        if Self.hasROCAFingerprint(nBN) {
            throw CryptoKeyError("RSA modulus has the ROCA weakness (CVE-2017-15361): its factors can be computed")
        }
        let key = try fromData(type: "RSA") { builder in
            OSSL_PARAM_BLD_push_BN(builder, Self.parameterName("n"), nBN) == 1
                && OSSL_PARAM_BLD_push_BN(builder, Self.parameterName("e"), eBN) == 1
        }
        guard case .rsa(let bits) = key.kind, bits >= 2048 else {
            throw CryptoKeyError("RSA modulus must be at least 2048 bits")
        }
        return key
    }

    /// An EC public key on P-256 or P-384 from its affine coordinates (JWK `x`, `y`), each
    /// exactly the field size. Points not on the curve are refused.
    package static func ecPublicKey(curve: String, x: [UInt8], y: [UInt8]) throws -> AsymmetricKey {
        let (groupName, size): (String, Int)
        switch curve {
        case "P-256": (groupName, size) = ("prime256v1", 32)
        case "P-384": (groupName, size) = ("secp384r1", 48)
        default: throw CryptoKeyError("unsupported EC curve \(curve)")
        }
        guard x.count == size, y.count == size else {
            throw CryptoKeyError("EC coordinates must be \(size) bytes each on \(curve)")
        }
        let point: [UInt8] = [0x04] + x + y
        let key = try groupName.withCString { group in
            try point.withUnsafeBytes { pointBytes in
                try fromData(type: "EC") { builder in
                    OSSL_PARAM_BLD_push_utf8_string(builder, Self.parameterName("group"), group, 0) == 1
                        && OSSL_PARAM_BLD_push_octet_string(
                            builder,
                            Self.parameterName("pub"),
                            pointBytes.baseAddress,
                            pointBytes.count
                        ) == 1
                }
            }
        }
        try key.checkPublicKey()
        return key
    }

    /// An Ed25519 public key from its 32 raw bytes (JWK `x`, RFC 8037).
    package static func ed25519PublicKey(_ raw: [UInt8]) throws -> AsymmetricKey {
        guard raw.count == 32 else { throw CryptoKeyError("Ed25519 public keys are 32 bytes") }
        guard
            let pkey = raw.withUnsafeBufferPointer({
                EVP_PKEY_new_raw_public_key(cgw_EVP_PKEY_ED25519(), nil, $0.baseAddress, $0.count)
            })
        else {
            throw CryptoKeyError("Ed25519 public key rejected by OpenSSL")
        }
        return try AsymmetricKey(pkey: pkey, hasPrivateKey: false)
    }

    /// A private key (PKCS#8 or traditional PEM), optionally encrypted with `passphrase`.
    package static func privateKey(pem: [UInt8], passphrase: [UInt8]? = nil) throws -> AsymmetricKey {
        OpenSSLErrorQueue.clear()
        guard let bio = pem.withUnsafeBytes({ BIO_new_mem_buf($0.baseAddress, Int32($0.count)) }) else {
            throw CryptoKeyError("out of memory")
        }
        defer { BIO_free(bio) }
        var passphraseCopy = (passphrase ?? []) + [0]
        defer { passphraseCopy.withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, $0.count) } }
        let pkey: OpaquePointer? = passphraseCopy.withUnsafeMutableBytes { raw in
            PEM_read_bio_PrivateKey(bio, nil, nil, raw.baseAddress)
        }
        guard let pkey else {
            OpenSSLErrorQueue.clear()
            throw CryptoKeyError("not a PEM private key (or wrong passphrase)")
        }
        let key = try AsymmetricKey(pkey: pkey, hasPrivateKey: true)
        if case .rsa(let bits) = key.kind, bits < 2048 {
            throw CryptoKeyError("RSA signing keys must be at least 2048 bits")
        }
        return key
    }

    /// A new key pair from OpenSSL's generator: RSA (`bits`), P-256/P-384, or Ed25519.
    package static func generate(_ kind: Kind) throws -> AsymmetricKey {
        let typeName: String
        switch kind {
        case .rsa: typeName = "RSA"
        case .ec: typeName = "EC"
        case .ed25519: typeName = "ED25519"
        }
        guard let context = EVP_PKEY_CTX_new_from_name(nil, typeName, nil) else {
            throw CryptoKeyError("OpenSSL has no \(typeName) key generator")
        }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_keygen_init(context) == 1 else { throw CryptoKeyError("keygen init failed") }
        switch kind {
        case .rsa(let bits):
            guard EVP_PKEY_CTX_set_rsa_keygen_bits(context, Int32(bits)) == 1 else {
                throw CryptoKeyError("bad RSA size")
            }
        case .ec(let curve):
            let group = curve == "P-384" ? "secp384r1" : "prime256v1"
            guard EVP_PKEY_CTX_set_group_name(context, group) == 1 else { throw CryptoKeyError("bad curve") }
        case .ed25519:
            break
        }
        var pkey: OpaquePointer?
        guard EVP_PKEY_generate(context, &pkey) == 1, let pkey else {
            OpenSSLErrorQueue.clear()
            throw CryptoKeyError("key generation failed")
        }
        return try AsymmetricKey(pkey: pkey, hasPrivateKey: true)
    }

    /// A parameter name with static storage: `OSSL_PARAM_BLD_push_*` keeps the name
    /// pointer until `OSSL_PARAM_BLD_to_param`, so a temporary bridged Swift string would
    /// dangle.
    private static func parameterName(_ name: StaticString) -> UnsafePointer<CChar> {
        UnsafeRawPointer(name.utf8Start).assumingMemoryBound(to: CChar.self)
    }

    /// The reason text of the oldest queued OpenSSL error (no key material), then clears
    /// the queue.
    static func lastErrorReason() -> String {
        OpenSSLErrorQueue.drain().first ?? "unknown error"
    }

    /// Moduli from Infineon's flawed generator (ROCA, CVE-2017-15361) are, modulo each of
    /// these small primes, a power of 65537; a random modulus almost never is for all of
    /// them (Nemec et al., CCS 2017, detection fingerprint).
    private static let rocaPrimes: [UInt] = [
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101, 103, 107,
        109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
    ]

    static func hasROCAFingerprint(_ modulus: OpaquePointer) -> Bool {
        for prime in rocaPrimes {
            let residue = BN_mod_word(modulus, UInt(prime))
            guard residue != UInt.max else { return false }
            // Is the residue in the subgroup generated by 65537 mod prime?
            let generator = 65537 % prime
            var power: UInt = 1
            var found = false
            for _ in 0..<prime {
                if power == UInt(residue) {
                    found = true
                    break
                }
                power = (power * generator) % prime
                if power == 1 { break }
            }
            if !found && UInt(residue) != 1 { return false }
        }
        return true
    }

    private static func bignum(_ bytes: [UInt8]) -> OpaquePointer? {
        bytes.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress, Int32($0.count), nil) }
    }

    private static func fromData(
        type: String,
        _ push: (OpaquePointer) -> Bool
    ) throws -> AsymmetricKey {
        OpenSSLErrorQueue.clear()
        guard let builder = OSSL_PARAM_BLD_new() else { throw CryptoKeyError("out of memory") }
        defer { OSSL_PARAM_BLD_free(builder) }
        guard push(builder), let params = OSSL_PARAM_BLD_to_param(builder) else {
            throw CryptoKeyError("\(type) key parameters rejected")
        }
        defer { OSSL_PARAM_free(params) }
        guard let context = EVP_PKEY_CTX_new_from_name(nil, type, nil) else {
            throw CryptoKeyError("OpenSSL has no \(type) support")
        }
        defer { EVP_PKEY_CTX_free(context) }
        var pkey: OpaquePointer?
        guard EVP_PKEY_fromdata_init(context) == 1,
            EVP_PKEY_fromdata(context, &pkey, cgw_EVP_PKEY_PUBLIC_KEY(), params) == 1,
            let pkey
        else {
            let reason = Self.lastErrorReason()
            throw CryptoKeyError("\(type) public key rejected by OpenSSL: \(reason)")
        }
        return try AsymmetricKey(pkey: pkey, hasPrivateKey: false)
    }

    /// Full public-key validation (EC: the point is on the curve and not infinity).
    private func checkPublicKey() throws {
        guard let context = EVP_PKEY_CTX_new_from_pkey(nil, self.pkey, nil) else {
            throw CryptoKeyError("out of memory")
        }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_public_check(context) == 1 else {
            OpenSSLErrorQueue.clear()
            throw CryptoKeyError("public key fails validation (point not on the curve?)")
        }
    }

    /// The private key as unencrypted PKCS#8 PEM (for keys generated in-process, e.g. the
    /// demo's signing key). Never logged.
    package func privateKeyPEM() throws -> String {
        guard hasPrivateKey, let bio = BIO_new(BIO_s_mem()) else { throw CryptoKeyError("no private key") }
        defer { BIO_free(bio) }
        guard PEM_write_bio_PrivateKey(bio, self.pkey, nil, nil, 0, nil, nil) == 1 else {
            throw CryptoKeyError("PEM export failed: \(Self.lastErrorReason())")
        }
        var pointer: UnsafeMutablePointer<CChar>?
        let length = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &pointer)
        guard length > 0, let pointer else { throw CryptoKeyError("PEM export failed") }
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: Int(length)), as: UTF8.self)
    }

    // MARK: Public parameters (JWK export)

    /// Big-endian public parameters for a JWK: RSA `n`/`e`, EC `x`/`y`, Ed25519 `x`.
    package var publicParameters: [String: [UInt8]] {
        switch self.kind {
        case .rsa:
            return ["n": self.bignumParameter(OSSL_PKEY_PARAM_RSA_N), "e": self.bignumParameter(OSSL_PKEY_PARAM_RSA_E)]
        case .ec(let curve):
            let size = curve == "P-384" ? 48 : 32
            var buffer = [UInt8](repeating: 0, count: 1 + 2 * size)
            var length = 0
            let ok = EVP_PKEY_get_octet_string_param(
                self.pkey,
                OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
                &buffer,
                buffer.count,
                &length
            )
            precondition(ok == 1 && length == buffer.count && buffer[0] == 4, "EC public point export failed")
            return ["x": Array(buffer[1...size]), "y": Array(buffer[(1 + size)...])]
        case .ed25519:
            var buffer = [UInt8](repeating: 0, count: 32)
            var length = 32
            precondition(EVP_PKEY_get_raw_public_key(self.pkey, &buffer, &length) == 1 && length == 32)
            return ["x": buffer]
        }
    }

    private func bignumParameter(_ name: String) -> [UInt8] {
        var bn: OpaquePointer?
        precondition(EVP_PKEY_get_bn_param(self.pkey, name, &bn) == 1 && bn != nil, "RSA parameter export failed")
        defer { BN_free(bn) }
        let size = (Int(BN_num_bits(bn)) + 7) / 8
        var out = [UInt8](repeating: 0, count: size)
        _ = BN_bn2bin(bn, &out)
        return out
    }

    /// Whether `algorithm` is defined for this key (RS/PS need RSA, ES256 P-256, ...).
    package func supports(_ algorithm: SignatureAlgorithm) -> Bool {
        switch (algorithm, self.kind) {
        case (.rs256, .rsa), (.rs384, .rsa), (.rs512, .rsa), (.ps256, .rsa), (.ps384, .rsa), (.ps512, .rsa):
            true
        case (.es256, .ec(let curve)): curve == "P-256"
        case (.es384, .ec(let curve)): curve == "P-384"
        case (.edDSA, .ed25519): true
        default: false
        }
    }

    // MARK: Verify and sign

    /// Checks a JWS signature. ECDSA signatures are the raw `r || s` of RFC 7518 §3.4 with
    /// each half exactly the curve size; DER, zero or out-of-range halves are refused.
    package func verify(
        _ algorithm: SignatureAlgorithm,
        signature: some Collection<UInt8>,
        message: some Collection<UInt8>
    ) -> Bool {
        guard self.supports(algorithm) else { return false }
        var signatureBytes = Array(signature)
        if let (_, scalarBytes) = algorithm.ecCurve {
            guard let der = Self.derSignature(rawRS: signatureBytes, scalarBytes: scalarBytes) else { return false }
            signatureBytes = der
        } else if case .rsa(let bits) = self.kind, signatureBytes.count != (bits + 7) / 8 {
            return false
        }
        let messageBytes = Array(message)
        OpenSSLErrorQueue.clear()
        guard let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        var keyContext: OpaquePointer?
        let initialised: Int32 =
            if let digest = algorithm.digestName {
                EVP_DigestVerifyInit_ex(context, &keyContext, digest, nil, nil, self.pkey, nil)
            } else {
                EVP_DigestVerifyInit_ex(context, &keyContext, nil, nil, nil, self.pkey, nil)
            }
        guard initialised == 1 else {
            OpenSSLErrorQueue.clear()
            return false
        }
        if Self.isPSS(algorithm) {
            guard EVP_PKEY_CTX_set_rsa_padding(keyContext, RSA_PKCS1_PSS_PADDING) == 1,
                EVP_PKEY_CTX_set_rsa_pss_saltlen(keyContext, RSA_PSS_SALTLEN_DIGEST) == 1
            else {
                OpenSSLErrorQueue.clear()
                return false
            }
        }
        let result = signatureBytes.withUnsafeBufferPointer { sig in
            messageBytes.withUnsafeBufferPointer { msg in
                EVP_DigestVerify(context, sig.baseAddress, sig.count, msg.baseAddress, msg.count)
            }
        }
        OpenSSLErrorQueue.clear()
        return result == 1
    }

    /// A JWS signature over `message` (ECDSA in raw `r || s` form). Needs a private key.
    package func sign(_ algorithm: SignatureAlgorithm, message: some Collection<UInt8>) throws -> [UInt8] {
        guard self.hasPrivateKey, self.supports(algorithm) else {
            throw CryptoKeyError("this key cannot sign \(algorithm.rawValue)")
        }
        let messageBytes = Array(message)
        OpenSSLErrorQueue.clear()
        guard let context = EVP_MD_CTX_new() else { throw CryptoKeyError("out of memory") }
        defer { EVP_MD_CTX_free(context) }
        var keyContext: OpaquePointer?
        let initialised: Int32 =
            if let digest = algorithm.digestName {
                EVP_DigestSignInit_ex(context, &keyContext, digest, nil, nil, self.pkey, nil)
            } else {
                EVP_DigestSignInit_ex(context, &keyContext, nil, nil, nil, self.pkey, nil)
            }
        guard initialised == 1 else { throw CryptoKeyError("sign init failed") }
        if Self.isPSS(algorithm) {
            guard EVP_PKEY_CTX_set_rsa_padding(keyContext, RSA_PKCS1_PSS_PADDING) == 1,
                EVP_PKEY_CTX_set_rsa_pss_saltlen(keyContext, RSA_PSS_SALTLEN_DIGEST) == 1
            else { throw CryptoKeyError("PSS setup failed") }
        }
        var length = 0
        guard
            messageBytes.withUnsafeBufferPointer({
                EVP_DigestSign(context, nil, &length, $0.baseAddress, $0.count)
            }) == 1
        else { throw CryptoKeyError("sign failed") }
        var output = [UInt8](repeating: 0, count: length)
        guard
            messageBytes.withUnsafeBufferPointer({ msg in
                output.withUnsafeMutableBufferPointer {
                    EVP_DigestSign(context, $0.baseAddress, &length, msg.baseAddress, msg.count)
                }
            }) == 1
        else { throw CryptoKeyError("sign failed") }
        output.removeSubrange(length...)
        if let (_, scalarBytes) = algorithm.ecCurve {
            return try Self.rawSignature(der: output, scalarBytes: scalarBytes)
        }
        return output
    }

    private static func isPSS(_ algorithm: SignatureAlgorithm) -> Bool {
        algorithm == .ps256 || algorithm == .ps384 || algorithm == .ps512
    }

    /// `r || s` → DER `ECDSA-Sig-Value`, or nil when the length is wrong or a half is 0.
    /// (OpenSSL's verify refuses halves >= the group order itself.)
    static func derSignature(rawRS: [UInt8], scalarBytes: Int) -> [UInt8]? {
        guard rawRS.count == 2 * scalarBytes else { return nil }
        let r = rawRS[0..<scalarBytes]
        let s = rawRS[scalarBytes...]
        guard r.contains(where: { $0 != 0 }), s.contains(where: { $0 != 0 }) else { return nil }
        guard let signature = ECDSA_SIG_new() else { return nil }
        defer { ECDSA_SIG_free(signature) }
        let rBN = Array(r).withUnsafeBufferPointer { BN_bin2bn($0.baseAddress, Int32($0.count), nil) }
        let sBN = Array(s).withUnsafeBufferPointer { BN_bin2bn($0.baseAddress, Int32($0.count), nil) }
        guard let rBN, let sBN, ECDSA_SIG_set0(signature, rBN, sBN) == 1 else {
            BN_free(rBN)
            BN_free(sBN)
            return nil
        }
        let length = i2d_ECDSA_SIG(signature, nil)
        guard length > 0 else { return nil }
        var der = [UInt8](repeating: 0, count: Int(length))
        der.withUnsafeMutableBufferPointer { buffer in
            var cursor = buffer.baseAddress
            _ = i2d_ECDSA_SIG(signature, &cursor)
        }
        return der
    }

    static func rawSignature(der: [UInt8], scalarBytes: Int) throws -> [UInt8] {
        let parsed: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_ECDSA_SIG(nil, &cursor, buffer.count)
        }
        guard let parsed else { throw CryptoKeyError("ECDSA signature not DER") }
        defer { ECDSA_SIG_free(parsed) }
        var out = [UInt8](repeating: 0, count: 2 * scalarBytes)
        let r = ECDSA_SIG_get0_r(parsed)
        let s = ECDSA_SIG_get0_s(parsed)
        let ok = out.withUnsafeMutableBufferPointer { buffer in
            BN_bn2binpad(r, buffer.baseAddress, Int32(scalarBytes)) == Int32(scalarBytes)
                && BN_bn2binpad(s, buffer.baseAddress! + scalarBytes, Int32(scalarBytes)) == Int32(scalarBytes)
        }
        guard ok else { throw CryptoKeyError("ECDSA signature halves too long") }
        return out
    }
}

/// HMAC with SHA-256/384/512 over one message, for JWS `HS*` with a configured secret.
package enum HMACFunction {
    /// The MAC of `message` under `key` with the digest of `algorithm` (an HS algorithm).
    package static func authenticationCode(
        _ algorithm: SignatureAlgorithm,
        key: [UInt8],
        message: some Collection<UInt8>
    ) -> [UInt8] {
        precondition(algorithm.isSymmetric && !key.isEmpty)
        let digest = algorithm.digestName!
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        let messageBytes = Array(message)
        let result = key.withUnsafeBufferPointer { keyBuffer in
            messageBytes.withUnsafeBufferPointer { msg in
                output.withUnsafeMutableBufferPointer { out in
                    EVP_Q_mac(
                        nil,
                        "HMAC",
                        nil,
                        digest,
                        nil,
                        keyBuffer.baseAddress,
                        keyBuffer.count,
                        msg.baseAddress,
                        msg.count,
                        out.baseAddress,
                        out.count,
                        nil
                    )
                }
            }
        }
        precondition(result != nil, "HMAC failed inside OpenSSL")
        let size = algorithm == .hs256 ? 32 : algorithm == .hs384 ? 48 : 64
        return Array(output.prefix(size))
    }
}

/// scrypt (RFC 7914) through `EVP_PBE_scrypt`, for user password hashes.
package enum Scrypt {
    /// Derives `length` bytes. Throws when the parameters exceed OpenSSL's memory bound.
    package static func derive(
        password: [UInt8],
        salt: [UInt8],
        n: UInt64,
        r: UInt64,
        p: UInt64,
        length: Int
    ) throws -> [UInt8] {
        var output = [UInt8](repeating: 0, count: length)
        let maxMemory: UInt64 = 128 * r * n * p + 16 * 1024 * 1024
        // A NUL-terminated copy so an empty password still has a valid pointer.
        var passwordCopy = password.map { CChar(bitPattern: $0) } + [0]
        defer { passwordCopy.withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, $0.count) } }
        let ok = passwordCopy.withUnsafeBufferPointer { pw in
            salt.withUnsafeBufferPointer { saltBuffer in
                output.withUnsafeMutableBufferPointer { out in
                    EVP_PBE_scrypt(
                        pw.baseAddress,
                        password.count,
                        saltBuffer.baseAddress,
                        saltBuffer.count,
                        n,
                        r,
                        p,
                        maxMemory,
                        out.baseAddress,
                        out.count
                    )
                }
            }
        }
        guard ok == 1 else {
            OpenSSLErrorQueue.clear()
            throw CryptoKeyError("scrypt parameters rejected")
        }
        return output
    }
}
