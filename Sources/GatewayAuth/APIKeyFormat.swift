import GatewayCrypto

/// The API key format of the product: `dbaudit_live_` or `dbaudit_test_`, 32 random
/// base62 characters, then 6 base62 characters of the CRC32 of everything before them,
/// so secret scanners (and the gateway, before any store round trip) can tell a real key
/// from a typo or a guess offline. Pure; any thread.
package enum APIKeyFormat {
    package static let livePrefix = "dbaudit_live_"
    package static let testPrefix = "dbaudit_test_"
    package static let randomLength = 32
    package static let checksumLength = 6
    /// Every key is exactly this long.
    package static let length = 13 + randomLength + checksumLength

    private static let alphabet: [UInt8] = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

    /// Whether `token` looks like an API key at all (its prefix), so it is checked as one.
    package static func hasAPIKeyPrefix(_ token: String) -> Bool {
        token.hasPrefix(livePrefix) || token.hasPrefix(testPrefix)
    }

    /// Why `token` is not a well-formed key, or nil if it is one.
    package static func problem(with token: String) -> String? {
        let bytes = Array(token.utf8)
        guard bytes.count == length else { return "the API key has the wrong length" }
        guard hasAPIKeyPrefix(token) else { return "the API key prefix is unknown" }
        for byte in bytes[13...] where !isBase62(byte) {
            return "the API key contains characters outside base62"
        }
        let expected = checksum(of: bytes[0..<(13 + randomLength)])
        guard Array(bytes[(13 + randomLength)...]) == expected else {
            return "the API key checksum does not match"
        }
        return nil
    }

    /// A new key for `environment` (`live` or `test`).
    package static func generate(test: Bool) -> String {
        var body = Array((test ? testPrefix : livePrefix).utf8)
        // Rejection sampling keeps every base62 character equally likely.
        while body.count < 13 + randomLength {
            for byte in SecureRandom.bytes(64) where byte < 248 {
                body.append(alphabet[Int(byte % 62)])
                if body.count == 13 + randomLength { break }
            }
        }
        body += checksum(of: body[...])
        return String(decoding: body, as: UTF8.self)
    }

    static func checksum(of bytes: ArraySlice<UInt8>) -> [UInt8] {
        var value = UInt64(CRC32.checksum(bytes))
        var digits = [UInt8](repeating: alphabet[0], count: checksumLength)
        for index in stride(from: checksumLength - 1, through: 0, by: -1) {
            digits[index] = alphabet[Int(value % 62)]
            value /= 62
        }
        return digits
    }

    private static func isBase62(_ byte: UInt8) -> Bool {
        (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122)
    }
}

/// CRC-32 (IEEE 802.3, the zlib polynomial). Not a secret-bearing computation: it only
/// catches typos in keys, so a table-driven implementation here is enough and avoids a
/// zlib dependency. Pure; any thread.
package enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 {
            value = value & 1 == 1 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1
        }
        return value
    }

    package static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
        }
        return crc ^ 0xFFFF_FFFF
    }
}
