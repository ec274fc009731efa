import GatewayCrypto
import Testing

@testable import GatewayAuth

@Suite struct PasswordHasherTests {
    static let hash = try! PasswordHasher.hash(password: "correct horse", cost: 10)

    /// An encoding made by hand with the given parameters and the right derived key.
    private static func encoded(
        password: String,
        ln: Int,
        r: UInt64 = 8,
        p: UInt64 = 1,
        salt: [UInt8] = Array(repeating: 9, count: 16)
    ) throws -> String {
        let derived = try Scrypt.derive(
            password: Array(password.utf8),
            salt: salt,
            n: 1 << UInt64(ln),
            r: r,
            p: p,
            length: 32
        )
        return "scrypt$ln=\(ln),r=\(r),p=\(p)$\(Base64URL.encode(salt))$\(Base64URL.encode(derived))"
    }

    @Test func roundTrip() throws {
        #expect(Self.hash.hasPrefix("scrypt$ln=10,r=8,p=1$"))
        let parts = Self.hash.split(separator: "$")
        #expect(parts.count == 4)
        #expect(Base64URL.decode(String(parts[2]))?.count == 16 && Base64URL.decode(String(parts[3]))?.count == 32)
        #expect(PasswordHasher.verify(password: "correct horse", encoded: Self.hash))
        // Salted: the same password hashes differently each time.
        #expect(try PasswordHasher.hash(password: "correct horse", cost: 10) != Self.hash)
        // RFC 7914 §12 vector through the same derivation: scrypt("password", "NaCl", N=1024, r=8, p=16).
        let vector = try Scrypt.derive(
            password: Array("password".utf8),
            salt: Array("NaCl".utf8),
            n: 1024,
            r: 8,
            p: 16,
            length: 64
        )
        #expect(
            Hex.encode(vector) == "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
                + "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"
        )
    }

    @Test func wrongPasswordsDoNotMatch() {
        for wrong in ["correct horsE", "correct horse ", "", "correct", "ćorrect horse", "\u{0}correct horse"] {
            #expect(!PasswordHasher.verify(password: wrong, encoded: Self.hash), "\(wrong)")
        }
        // Inherent to scrypt (PBKDF2-HMAC zero-pads keys shorter than a block): trailing NUL
        // bytes do not change the derived key. Pinned so a change of KDF is noticed.
        #expect(PasswordHasher.verify(password: "correct horse\u{0}", encoded: Self.hash))
    }

    @Test func unicodePasswordsAreBytesNotCharacters() throws {
        let composed = try PasswordHasher.hash(password: "caf\u{E9}", cost: 10)
        #expect(PasswordHasher.verify(password: "caf\u{E9}", encoded: composed))
        #expect(!PasswordHasher.verify(password: "cafe\u{301}", encoded: composed))
    }

    @Test func malformedEncodingsNeverMatch() throws {
        let parts = Self.hash.split(separator: "$").map(String.init)
        let (salt, key) = (parts[2], parts[3])
        for encoding in [
            "", "scrypt", "scrypt$$$", "bcrypt$ln=10,r=8,p=1$\(salt)$\(key)",
            "scrypt$ln=10,r=8,p=1$\(salt)$\(key)$", "scrypt$ln=10,r=8,p=1$\(salt)",
            "scrypt$ln=10,r=8$\(salt)$\(key)", "scrypt$ln=10,p=1$\(salt)$\(key)", "scrypt$r=8,p=1$\(salt)$\(key)",
            "scrypt$ln=10,r=8,p=1,x=1$\(salt)$\(key)", "scrypt$ln=ten,r=8,p=1$\(salt)$\(key)",
            "scrypt$ln=10,r=8,p=1$\(salt)=$\(key)", "scrypt$ln=10,r=8,p=1$\(salt)$\(key)=",
            "scrypt$ln=10,r=8,p=1$\(salt)$\(key.dropLast(2))", "scrypt$ln=10,r=8,p=1$\(salt)$\(key)AAAA",
            "scrypt$ln=10,r=8,p=1$\(salt)$", "SCRYPT$ln=10,r=8,p=1$\(salt)$\(key)",
            "scrypt$ln=-10,r=8,p=1$\(salt)$\(key)",
            "scrypt$ln=10,r=8,p=1$\(salt)$\(key.replacingOccurrences(of: "-", with: "+"))x",
        ] {
            #expect(!PasswordHasher.verify(password: "correct horse", encoded: encoding), "\(encoding)")
        }
        #expect(PasswordHasher.verify(password: "correct horse", encoded: "scrypt$ln=10,r=8,p=1$\(salt)$\(key)"))
    }

    @Test func costBounds() throws {
        // In-bounds parameters written by hand verify...
        #expect(PasswordHasher.verify(password: "pw", encoded: try Self.encoded(password: "pw", ln: 10)))
        #expect(PasswordHasher.verify(password: "pw", encoded: try Self.encoded(password: "pw", ln: 10, r: 1, p: 4)))
        // ...out of bounds never, even with the right key (cheap hashes, or a CPU bomb).
        #expect(!PasswordHasher.verify(password: "pw", encoded: try Self.encoded(password: "pw", ln: 9)))
        #expect(!PasswordHasher.verify(password: "pw", encoded: try Self.encoded(password: "pw", ln: 4)))
        #expect(!PasswordHasher.verify(password: "pw", encoded: try Self.encoded(password: "pw", ln: 10, r: 17)))
        #expect(!PasswordHasher.verify(password: "pw", encoded: try Self.encoded(password: "pw", ln: 10, p: 5)))
        // Huge costs are refused before any work is done.
        #expect(
            !PasswordHasher.verify(
                password: "pw",
                encoded: "scrypt$ln=62,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$" + String(repeating: "A", count: 43)
            )
        )
        #expect(
            !PasswordHasher.verify(
                password: "pw",
                encoded: "scrypt$ln=10,r=99999999,p=1$AAAAAAAAAAAAAAAAAAAAAA$" + String(repeating: "A", count: 43)
            )
        )
        // A stored hash (Redis is hostile input) asking for 2 GiB is refused before scrypt
        // runs; the most the gateway itself writes (1 GiB) is accepted.
        let tail = "$AAAAAAAAAAAAAAAAAAAAAA$" + String(repeating: "A", count: 43)
        #expect(PasswordHasher.parse("scrypt$ln=20,r=16,p=1" + tail) == nil)
        #expect(PasswordHasher.parse("scrypt$ln=19,r=16,p=1" + tail)?.cost == 19)
        #expect(PasswordHasher.parse("scrypt$ln=20,r=8,p=1" + tail)?.cost == 20)
        #expect(!PasswordHasher.verify(password: "pw", encoded: "scrypt$ln=20,r=16,p=1" + tail))
    }

    /// A malformed stored hash (negative `r` or `p`) must simply not match, never trap.
    @Test func negativeParametersDoNotCrash() async {
        await #expect(processExitsWith: .success) {
            _ = PasswordHasher.verify(
                password: "pw",
                encoded: "scrypt$ln=10,r=-8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            )
            _ = PasswordHasher.verify(
                password: "pw",
                encoded: "scrypt$ln=10,r=8,p=-1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            )
        }
    }

    @Test func overlongPasswordsNeverMatch() throws {
        let long = String(repeating: "p", count: PasswordHasher.maximumPasswordBytes)
        let encoded = try PasswordHasher.hash(password: long, cost: 10)
        #expect(PasswordHasher.verify(password: long, encoded: encoded))
        let tooLong = long + "p"
        #expect(
            !PasswordHasher.verify(password: tooLong, encoded: try PasswordHasher.hash(password: tooLong, cost: 10))
        )
    }

    @Test func decoyIsAWellFormedHashOfTheSameCost() {
        let decoy = PasswordHasher.decoy(cost: 10)
        #expect(decoy.hasPrefix("scrypt$ln=10,r=8,p=1$"))
        #expect(!PasswordHasher.verify(password: "", encoded: decoy))
        #expect(!PasswordHasher.verify(password: "correct horse", encoded: decoy))
    }
}
