import CGatewayOpenSSL

/// AES-256-GCM through OpenSSL's `EVP_CIPHER` interface: authenticated encryption of short
/// values the gateway must keep in a shared store without the store being able to read
/// them (the refresh retry grace keeps a token pair this way, under a key only the holder
/// of the old refresh token can derive). Sealed form: 12-byte random nonce, ciphertext,
/// 16-byte tag. Stateless; any thread (each call makes its own context).
package enum AESGCM {
    package static let keyBytes = 32
    package static let nonceBytes = 12
    package static let tagBytes = 16

    /// `plaintext` sealed under `key` (32 bytes), with `associatedData` authenticated too.
    package static func seal(_ plaintext: [UInt8], key: [UInt8], associatedData: [UInt8] = []) -> [UInt8] {
        precondition(key.count == keyBytes, "AES-256-GCM needs a 32-byte key")
        let nonce = SecureRandom.bytes(nonceBytes)
        guard let context = EVP_CIPHER_CTX_new() else {
            preconditionFailure("EVP_CIPHER_CTX_new failed: out of memory")
        }
        defer { EVP_CIPHER_CTX_free(context) }
        var output = [UInt8](repeating: 0, count: plaintext.count + 16)
        var written: Int32 = 0
        var total = 0
        var tag = [UInt8](repeating: 0, count: tagBytes)
        let ok: Bool = key.withUnsafeBufferPointer { keyPointer in
            nonce.withUnsafeBufferPointer { noncePointer in
                guard
                    EVP_EncryptInit_ex(
                        context,
                        EVP_aes_256_gcm(),
                        nil,
                        keyPointer.baseAddress,
                        noncePointer.baseAddress
                    ) == 1
                else {
                    return false
                }
                if !associatedData.isEmpty {
                    let aad = associatedData.withUnsafeBufferPointer {
                        EVP_EncryptUpdate(context, nil, &written, $0.baseAddress, Int32($0.count))
                    }
                    guard aad == 1 else { return false }
                }
                let updated = output.withUnsafeMutableBufferPointer { out in
                    plaintext.withUnsafeBufferPointer { input in
                        EVP_EncryptUpdate(context, out.baseAddress, &written, input.baseAddress, Int32(input.count))
                    }
                }
                guard updated == 1 else { return false }
                total = Int(written)
                let finished = output.withUnsafeMutableBufferPointer { out in
                    EVP_EncryptFinal_ex(context, out.baseAddress.map { $0 + total }, &written)
                }
                guard finished == 1 else { return false }
                total += Int(written)
                return tag.withUnsafeMutableBufferPointer {
                    EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_GET_TAG, Int32(tagBytes), $0.baseAddress) == 1
                }
            }
        }
        precondition(ok, "AES-256-GCM encryption failed inside OpenSSL")
        return nonce + output[0..<total] + tag
    }

    /// The plaintext of `sealed`, or nil if it was not sealed under `key` with
    /// `associatedData` (or was altered).
    package static func open(_ sealed: [UInt8], key: [UInt8], associatedData: [UInt8] = []) -> [UInt8]? {
        guard key.count == keyBytes, sealed.count >= nonceBytes + tagBytes else { return nil }
        let nonce = Array(sealed[0..<nonceBytes])
        let ciphertext = Array(sealed[nonceBytes..<(sealed.count - tagBytes)])
        var tag = Array(sealed[(sealed.count - tagBytes)...])
        guard let context = EVP_CIPHER_CTX_new() else {
            preconditionFailure("EVP_CIPHER_CTX_new failed: out of memory")
        }
        defer { EVP_CIPHER_CTX_free(context) }
        var output = [UInt8](repeating: 0, count: ciphertext.count + 16)
        var written: Int32 = 0
        var total = 0
        let ok: Bool = key.withUnsafeBufferPointer { keyPointer in
            nonce.withUnsafeBufferPointer { noncePointer in
                guard
                    EVP_DecryptInit_ex(
                        context,
                        EVP_aes_256_gcm(),
                        nil,
                        keyPointer.baseAddress,
                        noncePointer.baseAddress
                    ) == 1
                else {
                    return false
                }
                if !associatedData.isEmpty {
                    let aad = associatedData.withUnsafeBufferPointer {
                        EVP_DecryptUpdate(context, nil, &written, $0.baseAddress, Int32($0.count))
                    }
                    guard aad == 1 else { return false }
                }
                let updated = output.withUnsafeMutableBufferPointer { out in
                    ciphertext.withUnsafeBufferPointer { input in
                        EVP_DecryptUpdate(context, out.baseAddress, &written, input.baseAddress, Int32(input.count))
                    }
                }
                guard updated == 1 else { return false }
                total = Int(written)
                let tagSet = tag.withUnsafeMutableBufferPointer {
                    EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_SET_TAG, Int32(tagBytes), $0.baseAddress)
                }
                guard tagSet == 1 else { return false }
                let finished = output.withUnsafeMutableBufferPointer { out in
                    EVP_DecryptFinal_ex(context, out.baseAddress.map { $0 + total }, &written)
                }
                guard finished == 1 else { return false }
                total += Int(written)
                return true
            }
        }
        return ok ? Array(output[0..<total]) : nil
    }
}
