import GatewayCore
import GatewayTestSupport
import Testing

@testable import GatewayAuth

/// What a cache hit may skip (the checksum, the HMAC, the SHA-256 of a JWT) and what it
/// never skips (revocation, expiry, scopes, the exact bytes of the credential).
@Suite struct CredentialCacheHitTests {
    @Test func aKeyFoundValidIsNeitherCheckedNorHashedAgain() throws {
        let h = AuthHarness()
        let created = try h.createKey(scopes: ["read:databases"])
        #expect(try h.resolve(h.authorize(key: created.key)).successValue != nil)
        #expect(h.authenticator.keyHashesComputed == 1)
        for _ in 0..<20 {
            #expect(try #require(h.authorize(key: created.key).allowance)?.keyID == created.record.id)
        }
        #expect(h.authenticator.keyHashesComputed == 1)
        #expect(h.store.apiKeyCalls == 1)

        // The remembered hash is the key's: once the cache forgot the key, the store is
        // asked under it and answers for this key.
        h.authenticator.invalidateAll()
        let again = h.authorize(key: created.key)
        #expect(again.isPending)
        #expect(try h.resolve(again).successValue??.keyID == created.record.id)
        #expect(h.authenticator.keyHashesComputed == 1)
        #expect(h.store.apiKeyCalls == 2)
    }

    @Test func aRememberedHashNeverOutlivesRevocationExpiryOrScopes() throws {
        let h = AuthHarness()
        let created = try h.createKey(scopes: ["read:databases"], expiresIn: 100)
        #expect(try h.resolve(h.authorize(key: created.key)).successValue != nil)
        #expect(h.authorize(.scopes(["admin"]), key: created.key).denial == GatewayError.insufficientScope("admin"))
        h.clock.now += 100
        #expect(h.authorize(key: created.key).denial?.status == 401)

        let other = try h.createKey(scopes: ["read:databases"])
        #expect(try h.resolve(h.authorize(key: other.key)).successValue != nil)
        _ = try value(of: h.service.revoke(id: other.record.id), on: h.loop)
        h.authenticator.invalidate(apiKeyHash: h.authenticator.hash(apiKey: other.key))
        #expect(try h.resolve(h.authorize(key: other.key)).error?.status == 401)
        #expect(h.authorize(key: other.key).denial?.status == 401)
    }

    @Test func keysNotFoundValidAreNotRemembered() throws {
        let h = AuthHarness()
        let created = try h.createKey(scopes: ["read:databases"])
        _ = try value(of: h.service.revoke(id: created.record.id), on: h.loop)
        let unknown = APIKeyFormat.generate(test: false)
        for key in [unknown, created.key] {
            #expect(try h.resolve(h.authorize(key: key)).error?.status == 401)
        }
        #expect(h.authenticator.keyHashesComputed == 2)
        // Answered by the negative cache, yet checked and hashed again each time.
        for key in [unknown, created.key] {
            #expect(h.authorize(key: key).denial?.status == 401)
        }
        #expect(h.authenticator.keyHashesComputed == 4)
        #expect(h.store.apiKeyCalls == 2)
    }

    @Test func aTokenKeyIsItsExactBytes() {
        // Swift's String equality would take the Kelvin sign for a K.
        #expect("K" == "\u{212A}")
        #expect(ExactToken("aK.b") != ExactToken("a\u{212A}.b"))
        #expect(ExactToken("aK.b") == ExactToken(String("xaK.b".dropFirst())))
        #expect(ExactToken("aK.b").hashValue == ExactToken(String("xaK.b".dropFirst())).hashValue)
        #expect(ExactToken("aK.b") != ExactToken("aK.c"))
        #expect(ExactToken("aK.b") != ExactToken("aK.b."))
    }

    /// Only the end of a token is hashed, every byte is compared: tokens that differ at
    /// any one offset (before the hashed end too, in a step of 32 bytes, of 8, or in the
    /// tail) are different keys, and a copy is the same key.
    @Test func everyByteOfATokenKeyCounts() {
        for length in [1, 7, 8, 31, 32, 33, 41, 807] {
            let bytes = (0..<length).map { UInt8(ascii: "a") + UInt8($0 % 26) }
            let token = String(decoding: bytes, as: UTF8.self)
            var keys: [ExactToken: Int] = [ExactToken(token): -1]
            #expect(ExactToken(String(decoding: bytes, as: UTF8.self)) == ExactToken(token))
            #expect(keys[ExactToken(String(decoding: bytes, as: UTF8.self))] == -1)
            for offset in 0..<length {
                var changed = bytes
                changed[offset] ^= 0x20
                let other = ExactToken(String(decoding: changed, as: UTF8.self))
                #expect(other != ExactToken(token), "offset \(offset) of \(length)")
                #expect(keys[other] == nil, "offset \(offset) of \(length)")
                keys[other] = offset
            }
            #expect(keys.count == length + 1)
            for offset in 0..<length {
                var changed = bytes
                changed[offset] ^= 0x20
                #expect(keys[ExactToken(String(decoding: changed, as: UTF8.self))] == offset)
            }
        }
        #expect(ExactToken("") == ExactToken(""))
        #expect(ExactToken("") != ExactToken("a"))
    }

    @Test func aJWTCacheHitNeedsTheSameToken() throws {
        let h = JWTHarness()
        let token = try h.token(["jti": nil])
        #expect(h.authenticator.check(token).principal != nil)
        #expect(h.authenticator.check(token).principal != nil)
        #expect(h.authenticator.cacheHits == 1)
        // One character of the signature changed: verified (and refused), never a hit.
        let last = token.last!
        let tampered = String(token.dropLast()) + (last == "A" ? "B" : "A")
        #expect(h.authenticator.check(tampered).principal == nil)
        #expect(h.authenticator.cacheHits == 1)
        #expect(h.authenticator.cacheMisses == 2)
    }
}
