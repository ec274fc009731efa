import Foundation
import GatewayConfig
import GatewayCore
import GatewayStore
import GatewayTestSupport
import NIOCore
import NIOEmbedded
import Testing

@testable import GatewayAuth

private let invalidTokenPrefix = "Bearer realm=\"dbaudit\", error=\"invalid_token\""

/// A 401 for a credential that was sent but is no good.
private func expectInvalidToken(_ error: GatewayError?, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(error?.status == 401, sourceLocation: sourceLocation)
    #expect(error?.code == "invalid_token", sourceLocation: sourceLocation)
    #expect(
        error?.header("WWW-Authenticate")?.hasPrefix(invalidTokenPrefix) == true,
        "\(String(describing: error))",
        sourceLocation: sourceLocation
    )
}

/// A cache whose positive entries go stale 30 s after the store answered.
private func quicklyStaleCache(grace: Duration = .seconds(300)) -> CacheSettings {
    var cache = CacheSettings()
    cache.positiveTTL = .seconds(30)
    cache.staleGrace = grace
    return cache
}

/// Moves the harness's clock past `quicklyStaleCache`'s positive TTL.
private func passPositiveTTL(_ h: AuthHarness, by extra: UInt64 = 1) {
    h.clock.advance(seconds: 30 + extra)
}

@Suite struct AuthenticatorTests {
    // MARK: the route's requirement

    @Test func openRouteAllowsWithoutAnyHeader() throws {
        let h = AuthHarness()
        let outcome = h.authorize(.open, authorization: [])
        let allowed = try #require(outcome.allowance)
        #expect(allowed == nil)
        // Even a garbage header or a query token is not looked at on an open route.
        #expect(
            try #require(h.authorize(.open, authorization: ["garbage"], queryCarriesToken: true).allowance)
                == nil
        )
        #expect(h.store.apiKeyCalls == 0)
    }

    @Test func deniedRouteIs404BeforeAnyCredentialCheck() throws {
        let h = AuthHarness()
        let key = try h.createKey(scopes: ["admin"]).key
        for headers in [[], ["Bearer \(key)"], ["garbage"]] {
            let error = try #require(h.authorize(.denied, authorization: headers).denial)
            #expect(error == GatewayError.routeNotFound)
            #expect(error.status == 404)
            #expect(error.code == "not_found")
        }
        #expect(h.authorize(.denied, key: key).denial == GatewayError.routeNotFound)
        #expect(h.store.apiKeyCalls == 0)
    }

    @Test func theRequirementDecidesWhichScopesAKeyNeeds() throws {
        let h = AuthHarness()
        let reader = try h.createKey(scopes: ["read:databases"]).key
        #expect(try h.resolve(h.authorize(.readDatabases, key: reader)).successValue != nil)
        let result = try h.resolve(h.authorize(.scopes(["admin"]), key: reader))
        #expect(result.error == GatewayError.insufficientScope("admin"))
        #expect(h.authorize(.denied, key: reader).denial == GatewayError.routeNotFound)
    }

    @Test func anEmptyScopeListNeedsAnyValidKey() throws {
        // What `unmatched_routes = "authenticate"` asks of an unmatched request.
        let h = AuthHarness()
        let key = try h.createKey(scopes: ["read:logs"]).key
        #expect(h.authorize(.scopes([]), authorization: []).denial?.code == "missing_credential")
        let principal = try #require(try h.resolve(h.authorize(.scopes([]), key: key)).successValue)
        #expect(principal?.scopes == ["read:logs"])
    }

    // MARK: the Authorization header

    @Test func missingHeaderIs401WithBareChallenge() throws {
        let h = AuthHarness()
        let error = try #require(h.authorize(.readDatabases, authorization: []).denial)
        #expect(error.status == 401)
        #expect(error.code == "missing_credential")
        #expect(error.headers == [GatewayError.HeaderField("WWW-Authenticate", "Bearer realm=\"dbaudit\"")])
        #expect(h.store.apiKeyCalls == 0)
    }

    @Test func twoHeadersAreRefusedEvenIfBothAreValid() throws {
        let h = AuthHarness()
        let key = try h.createKey(scopes: ["admin"]).key
        expectInvalidToken(h.authorize(authorization: ["Bearer \(key)", "Bearer \(key)"]).denial)
        expectInvalidToken(h.authorize(authorization: ["Bearer \(key)", ""]).denial)
        #expect(h.store.apiKeyCalls == 0)
    }

    @Test func nonBearerSchemesAreRefused() throws {
        let h = AuthHarness()
        let key = try h.createKey(scopes: ["admin"]).key
        for header in [
            "Basic YWxpY2U6c2VjcmV0", "Token \(key)", "Bearer: \(key)", "Bearer", "Bearer ", "Bearer    ",
            key, "Bearerx \(key)", "Bearer\t\(key)", " Bearer \(key)", "", "MAC \(key)",
        ] {
            expectInvalidToken(h.authorize(authorization: [header]).denial)
        }
        #expect(h.store.apiKeyCalls == 0)
    }

    @Test(arguments: ["bearer", "BEARER", "BeArEr"])
    func schemeIsCaseInsensitive(scheme: String) throws {
        let h = AuthHarness()
        let key = try h.createKey(scopes: ["read:databases"]).key
        let result = try h.resolve(h.authorize(authorization: ["\(scheme) \(key)"]))
        #expect(result.successValue??.subject == "alice")
    }

    @Test func spacesAroundTheToken() throws {
        let h = AuthHarness()
        let key = try h.createKey(scopes: ["read:databases"]).key
        // RFC 7235 §2.1: `auth-scheme 1*SP token68`, so several spaces after the scheme are fine.
        let result = try h.resolve(h.authorize(authorization: ["Bearer    \(key)"]))
        #expect(result.successValue??.subject == "alice")
        // Anything after the token, or whitespace other than SP, is not a token68.
        expectInvalidToken(h.authorize(authorization: ["Bearer \(key) "]).denial)
        expectInvalidToken(h.authorize(authorization: ["Bearer \(key) x"]).denial)
        expectInvalidToken(h.authorize(authorization: ["Bearer \(key)\t"]).denial)
        expectInvalidToken(h.authorize(authorization: ["Bearer \t\(key)"]).denial)
        #expect(h.store.apiKeyCalls == 1)
    }

    @Test func tokenWithIllegalCharactersIsRefused() throws {
        let h = AuthHarness()
        let key = try h.createKey(scopes: ["admin"]).key
        for suffix in ["!", ",", "\"", "\u{0}", "\r", "\n", "é", "%", "*", "@", ":", ";", "\u{7F}"] {
            expectInvalidToken(h.authorize(authorization: ["Bearer \(key)\(suffix)"]).denial)
            expectInvalidToken(h.authorize(authorization: ["Bearer \(suffix)\(key)"]).denial)
        }
        // A token68 that is not an API key is not recognised.
        expectInvalidToken(h.authorize(authorization: ["Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc"]).denial)
        expectInvalidToken(h.authorize(authorization: ["Bearer " + String(repeating: "a", count: 9000)]).denial)
        #expect(h.store.apiKeyCalls == 0)
    }

    @Test func tokenInTheQueryIsRefusedEvenWithAValidHeader() throws {
        let h = AuthHarness()
        let key = try h.createKey(scopes: ["admin"]).key
        for headers in [[], ["Bearer \(key)"]] {
            let error = try #require(
                h.authorize(.readDatabases, authorization: headers, queryCarriesToken: true).denial
            )
            expectInvalidToken(error)
        }
        #expect(h.store.apiKeyCalls == 0)
    }

    // MARK: malformed keys never reach the store

    @Test func malformedKeysAreRefusedSynchronouslyWithoutAStoreLookup() throws {
        let h = AuthHarness()
        let key = try h.createKey(scopes: ["admin"]).key
        var bytes = Array(key.utf8)
        bytes[30] = bytes[30] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let typo = String(decoding: bytes, as: UTF8.self)
        let malformed = [
            typo,
            String(key.dropLast()),
            key + "A",
            String(key.dropLast(6)) + "000000",
            "dbaudit_live_" + String(repeating: "A", count: 38),
            "dbaudit_test_short",
            "dbaudit_live_" + String(key.dropFirst(13).dropLast()) + "_",
        ]
        for token in malformed {
            let outcome = h.authorize(key: token)
            #expect(!outcome.isPending, "\(token)")
            expectInvalidToken(outcome.denial)
            #expect(outcome.denial?.description.contains("malformed") == true, "\(token)")
        }
        #expect(h.store.apiKeyCalls == 0)
        #expect(h.authenticator.cacheHits == 0 && h.authenticator.cacheMisses == 0)
    }

    // MARK: valid keys and the cache

    @Test func validKeyIsPendingOnceThenServedFromTheCache() throws {
        let h = AuthHarness()
        let created = try h.createKey(scopes: ["read:databases", "read:logs"], expiresIn: 3600)
        let first = h.authorize(key: created.key)
        #expect(first.isPending)
        let expected = Principal(
            subject: "alice",
            kind: .apiKey,
            scopes: ["read:databases", "read:logs"],
            keyID: created.record.id,
            expiresAt: AuthHarness.startTime + 3600
        )
        #expect(try h.resolve(first).successValue == .some(expected))
        #expect(h.store.apiKeyCalls == 1)

        for _ in 0..<3 {
            let again = h.authorize(key: created.key)
            #expect(try #require(again.allowance) == expected)
        }
        #expect(h.store.apiKeyCalls == 1)
        #expect(h.authenticator.cacheMisses == 1)
        #expect(h.authenticator.cacheHits == 3)
    }

    @Test func cachedPrincipalStillHasItsScopesChecked() throws {
        let h = AuthHarness()
        let key = try h.createKey(scopes: ["read:databases"]).key
        #expect(try h.resolve(h.authorize(.readDatabases, key: key)).successValue != nil)
        let error = try #require(h.authorize(.writeDatabases, key: key).denial)
        #expect(error == GatewayError.insufficientScope("write:databases"))
        #expect(h.store.apiKeyCalls == 1)
    }

    @Test func insufficientScopeIs403NamingTheFirstMissingScope() throws {
        let h = AuthHarness()
        // POST /v1/databases needs write:databases then read:databases.
        for (scopes, missing) in [
            (["read:logs"], "write:databases"),
            (["read:databases"], "write:databases"),
            (["write:databases"], "read:databases"),
        ] {
            let key = try h.createKey(scopes: scopes).key
            let first = h.authorize(.writeDatabases, key: key)
            #expect(first.isPending)
            let error = try #require(try h.resolve(first).error)
            #expect(error.status == 403)
            #expect(error.code == "insufficient_scope")
            #expect(error.description.contains(missing))
            #expect(
                error.header("WWW-Authenticate")
                    == "Bearer realm=\"dbaudit\", error=\"insufficient_scope\", scope=\"\(missing)\""
            )
            // The cached principal is refused the same way, synchronously.
            #expect(h.authorize(.writeDatabases, key: key).denial == error)
        }
        let both = try h.createKey(scopes: ["read:databases", "write:databases"]).key
        #expect(try h.resolve(h.authorize(.writeDatabases, key: both)).successValue != nil)
    }

    @Test func adminGrantsEveryScope() throws {
        let h = AuthHarness()
        let key = try h.createKey(scopes: ["admin"]).key
        #expect(try h.resolve(h.authorize(.writeDatabases, key: key)).successValue??.scopes == ["admin"])
        #expect(try #require(h.authorize(.scopes(["read:reports"]), key: key).allowance) != nil)
        #expect(try #require(h.authorize(.scopes(Scopes.all), key: key).allowance) != nil)
    }

    @Test func testEnvironmentKeysAuthenticate() throws {
        let h = AuthHarness()
        let created = try h.createKey(scopes: ["read:databases"], test: true)
        #expect(created.key.hasPrefix("dbaudit_test_"))
        #expect(try h.resolve(h.authorize(key: created.key)).successValue??.keyID == created.record.id)
    }

    // MARK: unknown, revoked and expired keys

    @Test func unknownWellFormedKeyIs401AndNegativelyCached() throws {
        let h = AuthHarness()
        let key = APIKeyFormat.generate(test: false)
        let first = h.authorize(key: key)
        #expect(first.isPending)
        expectInvalidToken(try h.resolve(first).error)
        let second = h.authorize(key: key)
        #expect(!second.isPending)
        expectInvalidToken(second.denial)
        #expect(h.store.apiKeyCalls == 1)
    }

    @Test func revokedKeyIs401AndNegativelyCached() throws {
        let h = AuthHarness()
        let created = try h.createKey(scopes: ["read:databases"])
        #expect(try value(of: h.service.revoke(id: created.record.id), on: h.loop)?.revoked == true)

        let first = h.authorize(key: created.key)
        #expect(first.isPending)
        let error = try #require(try h.resolve(first).error)
        expectInvalidToken(error)
        #expect(error.description.contains("revoked"))

        let second = h.authorize(key: created.key)
        expectInvalidToken(second.denial)
        #expect(h.store.apiKeyCalls == 1)
        #expect(h.store.touchCalls.isEmpty)
    }

    @Test func revocationReachesACachedKeyThroughInvalidate() throws {
        let h = AuthHarness()
        let created = try h.createKey(scopes: ["read:databases"])
        #expect(try h.resolve(h.authorize(key: created.key)).successValue != nil)
        _ = try value(of: h.service.revoke(id: created.record.id), on: h.loop)
        // Still cached until the revocation message arrives.
        #expect(try #require(h.authorize(key: created.key).allowance) != nil)
        h.authenticator.invalidate(apiKeyHash: h.authenticator.hash(apiKey: created.key))
        expectInvalidToken(try h.resolve(h.authorize(key: created.key)).error)
        #expect(h.store.apiKeyCalls == 2)
    }

    @Test func keyExpiredInTheStoreIs401() throws {
        let h = AuthHarness()
        let created = try h.createKey(scopes: ["read:databases"], expiresIn: 60)
        h.clock.now += 60
        expectInvalidToken(try h.resolve(h.authorize(key: created.key)).error)
        expectInvalidToken(h.authorize(key: created.key).denial)
        #expect(h.store.apiKeyCalls == 1)
    }

    @Test func keyExpiringWhileCachedIs401FromTheFreshEntry() throws {
        let h = AuthHarness()
        let created = try h.createKey(scopes: ["read:databases"], expiresIn: 100)
        #expect(try h.resolve(h.authorize(key: created.key)).successValue != nil)

        h.clock.now += 99
        #expect(try #require(h.authorize(key: created.key).allowance) != nil)

        h.clock.now += 1
        let outcome = h.authorize(key: created.key)
        #expect(!outcome.isPending)
        expectInvalidToken(outcome.denial)
        h.clock.now += 1_000
        expectInvalidToken(h.authorize(key: created.key).denial)
        // The positive entry was fresh: the store was never asked again.
        #expect(h.store.apiKeyCalls == 1)
    }

    // MARK: store outages

    @Test func storeUnavailableIs503NeverA401() throws {
        let h = AuthHarness()
        let key = try h.createKey(scopes: ["read:databases"]).key
        h.store.failure = CredentialStoreError.unavailable
        let outcome = h.authorize(key: key)
        #expect(outcome.isPending)
        let error = try #require(try h.resolve(outcome).error)
        #expect(error == GatewayError.authUnavailable)
        #expect(error.status == 503)
        #expect(error.code == "auth_unavailable")
        #expect(error.header("Retry-After") == "1")

        // An unknown key during the outage is a 503 too: the gateway cannot tell.
        let unknown = try #require(try h.resolve(h.authorize(key: APIKeyFormat.generate(test: false))).error)
        #expect(unknown.status == 503)

        // The outage was not remembered as "unknown key": once the store is back the key works.
        h.store.failure = nil
        let principal = try #require(try h.resolve(h.authorize(key: key)).successValue)
        #expect(principal?.subject == "alice")
        #expect(h.store.apiKeyCalls == 3)
    }

    @Test func staleEntryKeepsWorkingWhileTheStoreIsUnavailable() throws {
        let h = AuthHarness(cache: quicklyStaleCache())
        let created = try h.createKey(scopes: ["read:databases"])
        let principal = try #require(try h.resolve(h.authorize(key: created.key)).successValue)
        #expect(principal?.subject == "alice" && principal?.keyID == created.record.id)

        passPositiveTTL(h)
        h.store.failure = CredentialStoreError.unavailable
        let outcome = h.authorize(key: created.key)
        #expect(outcome.isPending, "a stale entry is re-checked with the store")
        #expect(try h.resolve(outcome).successValue == .some(principal))
        #expect(h.store.apiKeyCalls == 2)

        // Scopes still apply to the stale principal.
        let error = try #require(try h.resolve(h.authorize(.writeDatabases, key: created.key)).error)
        #expect(error == GatewayError.insufficientScope("write:databases"))
    }

    @Test func staleEntryIsRefreshedWhenTheStoreAnswers() throws {
        let h = AuthHarness(cache: quicklyStaleCache())
        let created = try h.createKey(scopes: ["read:databases"])
        #expect(try h.resolve(h.authorize(key: created.key)).successValue != nil)
        _ = try value(of: h.service.revoke(id: created.record.id), on: h.loop)

        passPositiveTTL(h)
        // The store can be asked: its answer (revoked) wins over the stale entry.
        expectInvalidToken(try h.resolve(h.authorize(key: created.key)).error)
        #expect(h.store.apiKeyCalls == 2)
    }

    @Test func staleEntryPastItsGraceIs503WhileTheStoreIsUnavailable() throws {
        let h = AuthHarness(cache: quicklyStaleCache(grace: .seconds(5)))
        let key = try h.createKey(scopes: ["read:databases"]).key
        #expect(try h.resolve(h.authorize(key: key)).successValue != nil)
        passPositiveTTL(h, by: 4)
        h.store.failure = CredentialStoreError.unavailable
        #expect(try h.resolve(h.authorize(key: key)).successValue != nil, "still within the grace")
        h.store.failure = nil
        #expect(try h.resolve(h.authorize(key: key)).successValue != nil)
        passPositiveTTL(h, by: 10)
        h.store.failure = CredentialStoreError.unavailable
        #expect(try h.resolve(h.authorize(key: key)).error == GatewayError.authUnavailable)
    }

    @Test func expiredKeyIsNotRevivedByTheStaleGrace() throws {
        let h = AuthHarness(cache: quicklyStaleCache())
        let created = try h.createKey(scopes: ["read:databases"], expiresIn: 100)
        #expect(try h.resolve(h.authorize(key: created.key)).successValue != nil)

        h.clock.now += 200
        h.store.failure = CredentialStoreError.unavailable
        let result = try h.resolve(h.authorize(key: created.key))
        #expect(result.error?.status == 401)
        #expect(result.error?.status != 503, "an expired key is the caller's problem, not an outage")
    }

    @Test func undecodableRecordIsTreatedAsAbsent() throws {
        // CredentialStore.swift documents: "a record that fails to decode is treated as
        // absent and logged by the caller" (the Redis store reports it as `.corrupt`).
        let h = AuthHarness()
        let key = try h.createKey(scopes: ["read:databases"]).key
        h.store.failure = CredentialStoreError.corrupt("record is not valid JSON")
        let result = try h.resolve(h.authorize(key: key))
        #expect(result.successValue == nil, "a record that cannot be read never authenticates")
        expectInvalidToken(result.error)
    }

    /// A record a hostile or damaged Redis returns with scope values that are not scope
    /// tokens never authenticates: its scopes would otherwise reach the upstream verbatim.
    @Test(arguments: [
        ["read:databases", "x\tadmin"], ["read:databases,admin"], ["read:databases", "x admin"],
        ["read:databases", ""], ["read:databases", "a\"b"], ["read:databases", "a\\b"],
    ])
    func recordWithScopesThatAreNotScopeTokensIsRefused(scopes: [String]) throws {
        let h = AuthHarness()
        let key = APIKeyFormat.generate(test: false)
        let record = APIKeyRecord(
            id: "key_hostile",
            name: "hostile",
            scopes: scopes,
            owner: "mallory",
            createdAt: AuthHarness.startTime,
            expiresAt: nil,
            last4: String(key.suffix(4)),
            environment: "live"
        )
        try value(of: h.store.inner.createAPIKey(record, hash: h.authenticator.hash(apiKey: key)), on: h.loop)
        let result = try h.resolve(h.authorize(key: key))
        #expect(result.successValue == nil, "admitted: \(String(describing: result.successValue))")
        expectInvalidToken(result.error)
    }

    // MARK: invalidation

    @Test func invalidateDropsOneCachedKey() throws {
        let h = AuthHarness()
        let first = try h.createKey(scopes: ["read:databases"]).key
        let second = try h.createKey(scopes: ["read:databases"]).key
        #expect(try h.resolve(h.authorize(key: first)).successValue != nil)
        #expect(try h.resolve(h.authorize(key: second)).successValue != nil)
        #expect(h.store.apiKeyCalls == 2)

        h.authenticator.invalidate(apiKeyHash: h.authenticator.hash(apiKey: first))
        #expect(h.authorize(key: first).isPending)
        #expect(h.store.apiKeyCalls == 3)
        #expect(!h.authorize(key: second).isPending)
        #expect(!h.authorize(key: first).isPending)
        #expect(h.store.apiKeyCalls == 3)
    }

    @Test func invalidateDropsNegativeEntries() throws {
        let h = AuthHarness()
        let key = APIKeyFormat.generate(test: false)
        expectInvalidToken(try h.resolve(h.authorize(key: key)).error)
        #expect(!h.authorize(key: key).isPending)
        h.authenticator.invalidate(apiKeyHash: h.authenticator.hash(apiKey: key))
        #expect(h.authorize(key: key).isPending)
        #expect(h.store.apiKeyCalls == 2)
    }

    @Test func invalidateAllDropsEveryCachedKey() throws {
        let h = AuthHarness()
        let keys = try (0..<3).map { _ in try h.createKey(scopes: ["read:databases"]).key }
        for key in keys { #expect(try h.resolve(h.authorize(key: key)).successValue != nil) }
        h.authenticator.invalidateAll()
        for key in keys { #expect(h.authorize(key: key).isPending) }
        #expect(h.store.apiKeyCalls == 6)
    }

    @Test func hashIsKeyedLowercaseHex() throws {
        let h = AuthHarness()
        let key = APIKeyFormat.generate(test: false)
        let hash = h.authenticator.hash(apiKey: key)
        #expect(hash.utf8.count == 64)
        #expect(hash.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) })
        #expect(hash == h.authenticator.hash(apiKey: key))
        #expect(hash != h.authenticator.hash(apiKey: APIKeyFormat.generate(test: false)))
        // The same pepper gives the same hash on another loop; a different pepper does not.
        #expect(AuthHarness().authenticator.hash(apiKey: key) == hash)
        #expect(AuthHarness(pepper: Array(repeating: 7, count: 32)).authenticator.hash(apiKey: key) != hash)
        #expect(RevocationMessage.apiKeyHash(from: RevocationMessage.encode(apiKeyHash: hash)) == hash)
    }

    // MARK: last_used_at

    /// More distinct keys in a minute than the loop tracks: the extra ones are not written
    /// (a flood of keys must never become a write per request), and the throttle frees up
    /// once its entries are a minute old.
    @Test func touchThrottleIsBoundedWithoutWritingPerRequest() throws {
        let h = AuthHarness(maximumTrackedKeys: 2)
        let keys = try (0..<3).map { _ in try h.createKey(scopes: ["read:databases"]) }
        for created in keys {
            #expect(try h.resolve(h.authorize(key: created.key)).successValue != nil)
        }
        #expect(h.store.touchCalls.map(\.id) == [keys[0].record.id, keys[1].record.id])
        // Cached now: repeated use of the third key still writes nothing this minute.
        for _ in 0..<5 { _ = h.authorize(key: keys[2].key) }
        #expect(h.store.touchCalls.count == 2)
        h.clock.now += 61
        _ = h.authorize(key: keys[2].key)
        #expect(h.store.touchCalls.count == 3 && h.store.touchCalls.last?.id == keys[2].record.id)
    }

    @Test func touchIsAtMostOncePerMinutePerKey() throws {
        let h = AuthHarness()
        let created = try h.createKey(scopes: ["read:databases"])
        let other = try h.createKey(scopes: ["read:databases"])

        #expect(try h.resolve(h.authorize(key: created.key)).successValue != nil)
        #expect(h.store.touchCalls.count == 1)
        #expect(h.store.touchCalls.first?.id == created.record.id)
        #expect(h.store.touchCalls.first?.time == AuthHarness.startTime)

        for _ in 0..<5 { _ = h.authorize(key: created.key) }
        h.clock.now += 59
        _ = h.authorize(key: created.key)
        #expect(h.store.touchCalls.count == 1)

        // Another key has its own minute.
        #expect(try h.resolve(h.authorize(key: other.key)).successValue != nil)
        #expect(h.store.touchCalls.count == 2)

        h.clock.now += 2  // 61 s after the first touch
        #expect(try #require(h.authorize(key: created.key).allowance) != nil)
        #expect(h.store.touchCalls.count == 3)
        #expect(h.store.touchCalls.last?.id == created.record.id)
        #expect(h.store.touchCalls.last?.time == AuthHarness.startTime + 61)
        _ = h.authorize(key: created.key)
        #expect(h.store.touchCalls.count == 3)

        // The in-memory store recorded the use.
        let listed = try value(of: h.store.inner.listAPIKeys(), on: h.loop)
        #expect(listed.first { $0.id == created.record.id }?.lastUsedAt == AuthHarness.startTime + 61)
    }

    @Test func failedTouchDoesNotFailTheRequest() throws {
        let h = AuthHarness()
        let key = try h.createKey(scopes: ["read:databases"]).key
        #expect(try h.resolve(h.authorize(key: key)).successValue != nil)
        h.store.failure = CredentialStoreError.unavailable
        h.clock.now += 120
        #expect(try #require(h.authorize(key: key).allowance) != nil)
        #expect(h.store.touchCalls.count == 2)
    }

    @Test func refusedRequestsAreNotTouched() throws {
        let h = AuthHarness()
        let key = try h.createKey(scopes: ["read:databases"], expiresIn: 10).key
        h.clock.now += 10
        _ = try h.resolve(h.authorize(key: key))
        _ = h.authorize(key: key)
        #expect(h.store.touchCalls.isEmpty)
    }
}
