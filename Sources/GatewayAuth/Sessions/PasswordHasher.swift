import GatewayCrypto

/// scrypt password hashes in the form `scrypt$ln=<log2 N>,r=8,p=1$<salt>$<hash>` (salt and
/// hash base64url), through OpenSSL's `EVP_PBE_scrypt`. Hashing costs tens of
/// milliseconds by design: callers run it on a thread pool, never on an event loop.
/// Stateless; any thread.
package enum PasswordHasher {
    package static let hashBytes = 32
    package static let saltBytes = 16
    /// Longest password accepted (bytes): longer inputs only cost CPU.
    package static let maximumPasswordBytes = 1024
    /// Most memory one check may take: what the highest configurable cost needs.
    package static let maximumScryptMemory: UInt64 = 1 << 30

    package static func hash(password: String, cost: Int) throws -> String {
        let salt = SecureRandom.bytes(saltBytes)
        let derived = try Scrypt.derive(
            password: Array(password.utf8),
            salt: salt,
            n: 1 << UInt64(cost),
            r: 8,
            p: 1,
            length: hashBytes
        )
        return "scrypt$ln=\(cost),r=8,p=1$\(Base64URL.encode(salt))$\(Base64URL.encode(derived))"
    }

    /// The parts of a stored hash, once its parameters are known to be within bounds.
    package struct Stored {
        package var cost: Int
        package var r: UInt64
        package var p: UInt64
        package var salt: [UInt8]
        package var hash: [UInt8]
    }

    /// `encoded` parsed, or nil when it is malformed or asks for more than this gateway
    /// ever writes. The stored hash comes from Redis, so it is hostile input: it may not
    /// ask for a cheaper check, nor for more memory than the largest configurable cost
    /// (2^20 with r = 8: 1 GiB).
    package static func parse(_ encoded: String) -> Stored? {
        let parts = encoded.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "scrypt", let salt = Base64URL.decode(String(parts[2])),
            let expected = Base64URL.decode(String(parts[3])), expected.count == hashBytes
        else { return nil }
        var cost = 0
        var r: UInt64 = 0
        var p: UInt64 = 0
        for field in parts[1].split(separator: ",") {
            let pair = field.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, let value = Int(pair[1]), value > 0, value <= 64 else { return nil }
            switch pair[0] {
            case "ln": cost = value
            case "r": r = UInt64(value)
            case "p": p = UInt64(value)
            default: return nil
            }
        }
        guard (10...20).contains(cost), (1...16).contains(r), (1...4).contains(p),
            128 * r << UInt64(cost) <= maximumScryptMemory
        else {
            return nil
        }
        return Stored(cost: cost, r: r, p: p, salt: salt, hash: expected)
    }

    /// Whether `password` matches `encoded`, compared in constant time. A malformed or
    /// out-of-bounds encoding never matches.
    package static func verify(password: String, encoded: String) -> Bool {
        guard let stored = parse(encoded), password.utf8.count <= maximumPasswordBytes,
            let derived = try? Scrypt.derive(
                password: Array(password.utf8),
                salt: stored.salt,
                n: 1 << UInt64(stored.cost),
                r: stored.r,
                p: stored.p,
                length: hashBytes
            )
        else { return false }
        return HMACSHA256.constantTimeEquals(derived, stored.hash)
    }

    /// Whether `encoded` should be replaced by a hash with `cost`: it parses but was made
    /// with other parameters (an older `password_hash_cost`, or another r or p). A check
    /// then costs what its own parameters say, not what the decoy of an unknown e-mail
    /// costs, so its timing would tell that the account exists.
    package static func needsRehash(_ encoded: String, cost: Int) -> Bool {
        guard let stored = parse(encoded) else { return false }
        return stored.cost != cost || stored.r != 8 || stored.p != 1
    }

    /// A hash of a random password with `cost`, checked when the account does not exist so
    /// that an unknown e-mail costs the same time as a wrong password.
    package static func decoy(cost: Int) -> String {
        (try? hash(password: Base64URL.encode(SecureRandom.bytes(24)), cost: cost))
            ?? "scrypt$ln=\(cost),r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    }
}
