import Foundation
import GatewayConfig
import GatewayCore
import GatewayStore
import GatewayTestSupport
import Logging
import Testing

@testable import GatewayAuth

/// Opaque OAuth access tokens through the authenticator: detection by prefix, the store
/// lookup by SHA-256, this loop's cache (positive, negative, stale within the grace, never
/// past the token's expiry), revocation, and outages (503, never 401).
@Suite struct OpaqueTokenAuthenticatorTests {
    private static let token = "dbaudit_at_" + String(repeating: "A", count: 42) + "w"

    private func issue(
        _ h: AuthHarness,
        token: String = Self.token,
        scopes: [String] = ["read:databases"],
        lifetime: Int64 = 600
    ) {
        let record = OpaqueAccessTokenRecord(
            clientID: "cid_app",
            subject: "usr_1",
            scopes: scopes,
            tokenID: "at-1",
            issuedAt: h.clock.now,
            expiresAt: h.clock.now + lifetime
        )
        _ = h.opaqueStore.storeOpaqueAccessToken(
            hash: OpaqueAccessTokenFormat.hash(token),
            record: record,
            now: h.clock.now
        )
    }

    private func expectRefused(
        _ result: Result<Principal?, GatewayError>,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(result.error?.status == 401, sourceLocation: sourceLocation)
        #expect(result.error?.code == "invalid_token", sourceLocation: sourceLocation)
    }

    @Test func formatAndHash() {
        #expect(OpaqueAccessTokenFormat.isWellFormed(Self.token))
        let generated = OpaqueAccessTokenFormat.generate()
        #expect(OpaqueAccessTokenFormat.isWellFormed(generated.token))
        #expect(generated.hash == OpaqueAccessTokenFormat.hash(generated.token))
        // SHA-256("abc"), the FIPS 180-2 example.
        #expect(
            OpaqueAccessTokenFormat.hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        )
        for bad in [
            "dbaudit_at_", Self.token + "A", String(Self.token.dropLast()),
            Self.token.replacingOccurrences(of: "w", with: "+"), "dbaudit_AT_" + String(repeating: "A", count: 43),
        ] {
            #expect(!OpaqueAccessTokenFormat.isWellFormed(bad), "\(bad)")
        }
    }

    @Test func validTokenIsAnOAuthPrincipalAndIsCachedOnTheLoop() throws {
        let h = AuthHarness(withOpaqueTokens: true)
        issue(h)
        let outcome = h.authorize(key: Self.token)
        #expect(outcome.isPending)
        let principal = try #require(try h.resolve(outcome).successValue ?? nil)
        #expect(principal.kind == .oauth && principal.clientID == "cid_app" && principal.subject == "usr_1")
        #expect(principal.scopes == ["read:databases"] && principal.issuer == "https://gateway.test")
        #expect(principal.rateLimitKey == "client:cid_app")
        // The second request is answered from the cache, synchronously.
        #expect(try #require(h.authorize(key: Self.token).allowance) == principal)
        #expect(h.opaqueStore.lookups == 1)
        #expect(h.store.apiKeyCalls == 0)
    }

    @Test func malformedUnknownAndExpiredTokensAre401() throws {
        let h = AuthHarness(withOpaqueTokens: true)
        expectRefused(try h.resolve(h.authorize(key: "dbaudit_at_short")))
        #expect(h.opaqueStore.lookups == 0)
        // Unknown: asked once, then remembered as unknown.
        expectRefused(try h.resolve(h.authorize(key: Self.token)))
        expectRefused(try h.resolve(h.authorize(key: Self.token)))
        #expect(h.opaqueStore.lookups == 1)
        // A record past its expiry (Redis has not dropped it yet).
        let other = "dbaudit_at_" + String(repeating: "B", count: 43)
        issue(h, token: other, lifetime: 0)
        expectRefused(try h.resolve(h.authorize(key: other)))
    }

    @Test func aCachedTokenStopsAtItsExpiry() throws {
        let h = AuthHarness(withOpaqueTokens: true)
        issue(h, lifetime: 30)
        #expect(try h.resolve(h.authorize(key: Self.token)).successValue != nil)
        h.clock.now += 30
        // Within positive_ttl (60 s by default), yet past the token's exp.
        expectRefused(try h.resolve(h.authorize(key: Self.token)))
        #expect(h.opaqueStore.lookups == 1)
    }

    @Test func revocationDropsTheCachedToken() throws {
        let h = AuthHarness(withOpaqueTokens: true)
        issue(h)
        #expect(try h.resolve(h.authorize(key: Self.token)).successValue != nil)
        _ = h.opaqueStore.revokeOpaqueAccessToken(hash: OpaqueAccessTokenFormat.hash(Self.token))
        // Still cached until the revocation message arrives.
        #expect(h.authorize(key: Self.token).allowance != nil)
        h.authenticator.invalidate(opaqueAccessTokenHash: OpaqueAccessTokenFormat.hash(Self.token))
        expectRefused(try h.resolve(h.authorize(key: Self.token)))
        #expect(h.opaqueStore.lookups == 2)
    }

    @Test func aLookupOvertakenByARevocationIsNotCached() throws {
        let h = AuthHarness(withOpaqueTokens: true)
        issue(h)
        let record = try #require(h.opaqueStore.records.values.first)
        h.opaqueStore.holdLookups = true
        let first = h.authorize(key: Self.token)
        h.authenticator.invalidate(opaqueAccessTokenHash: OpaqueAccessTokenFormat.hash(Self.token))
        h.opaqueStore.releaseHeldLookups(answering: [OpaqueAccessTokenFormat.hash(Self.token): record])
        #expect(try h.resolve(first).successValue != nil)
        // The answer read before the revocation is not remembered.
        h.opaqueStore.holdLookups = false
        #expect(h.authorize(key: Self.token).isPending)
    }

    @Test func storeOutageIs503UnlessAStaleEntryIsWithinGrace() throws {
        var cache = CacheSettings()
        cache.positiveTTL = .seconds(30)
        cache.staleGrace = .seconds(300)
        let h = AuthHarness(cache: cache, withOpaqueTokens: true)
        issue(h, lifetime: 100)
        #expect(try h.resolve(h.authorize(key: Self.token)).successValue != nil)
        h.clock.advance(seconds: 31)
        h.opaqueStore.failure = CredentialStoreError.unavailable
        // Stale, store down: still admitted within the grace...
        #expect(try h.resolve(h.authorize(key: Self.token)).successValue != nil)
        // ...but never past the token's own expiry.
        h.clock.now += 69
        expectRefused(try h.resolve(h.authorize(key: Self.token)))
        // A token never seen: 503, never 401.
        let other = "dbaudit_at_" + String(repeating: "C", count: 43)
        let error = try #require(try h.resolve(h.authorize(key: other)).error)
        #expect(error == GatewayError.authUnavailable && error.status == 503)
    }

    @Test func corruptRecordIsRefused() throws {
        let h = AuthHarness(withOpaqueTokens: true)
        h.opaqueStore.failure = CredentialStoreError.corrupt("not JSON")
        expectRefused(try h.resolve(h.authorize(key: Self.token)))
    }

    @Test func scopesAreEnforced() throws {
        let h = AuthHarness(withOpaqueTokens: true)
        issue(h, scopes: ["read:logs"])
        let error = try #require(try h.resolve(h.authorize(key: Self.token)).error)
        #expect(error.status == 403 && error.code == "insufficient_scope")
        // Cached: the second refusal is synchronous.
        #expect(h.authorize(key: Self.token).denial?.status == 403)
    }

    @Test func withoutATokenStoreOurPrefixIsNotRecognised() throws {
        let h = AuthHarness()
        expectRefused(try h.resolve(h.authorize(key: Self.token)))
        #expect(h.opaqueStore.lookups == 0)
    }
}

/// Which checker a bearer token goes to: API keys and our opaque tokens by prefix (never
/// introspected elsewhere), JWTs by shape when JWTs are configured, anything else to
/// introspection when configured, else 401.
@Suite struct CredentialDetectionTests {
    /// A poster that records the tokens it was asked about and says every one is active.
    private final class Recorder: @unchecked Sendable {
        var bodies: [String] = []
        var poster: HTTPPoster {
            { request, loop in
                self.bodies.append(String(decoding: request.body, as: UTF8.self))
                let body = #"{"active":true,"sub":"ext","scope":"read:databases","exp":4000000000}"#
                return loop.makeSucceededFuture(
                    HTTPFetchResponse(status: 200, cacheControl: nil, body: Array(body.utf8))
                )
            }
        }
    }

    @Test func eachCredentialGoesToItsChecker() throws {
        let recorder = Recorder()
        let h = AuthHarness(withOpaqueTokens: true, introspectionPoster: recorder.poster)
        let key = try h.createKey(scopes: ["read:databases"]).key
        #expect(try h.resolve(h.authorize(key: key)).successValue??.kind == .apiKey)
        // Ours by prefix: looked up in our store, never sent elsewhere (unknown: 401).
        let ours = "dbaudit_at_" + String(repeating: "Z", count: 43)
        #expect(try h.resolve(h.authorize(key: ours)).error?.status == 401)
        #expect(try h.resolve(h.authorize(key: "dbaudit_at_malformed")).error?.status == 401)
        #expect(h.opaqueStore.lookups == 1)
        // A malformed API key is refused as such, not introspected.
        #expect(try h.resolve(h.authorize(key: "dbaudit_live_short")).error?.status == 401)
        // Without [auth.jwt], a JWT-shaped token is just another opaque token: introspected.
        let principal = try #require(
            try h.resolve(h.authorize(key: "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")).successValue ?? nil
        )
        #expect(principal.kind == .oauth && principal.subject == "ext")
        #expect(try h.resolve(h.authorize(key: "someone-elses-token")).successValue??.kind == .oauth)
        #expect(
            recorder.bodies == [
                "token=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln&token_type_hint=access_token",
                "token=someone-elses-token&token_type_hint=access_token",
            ]
        )
    }

    @Test func withoutIntrospectionAnUnknownTokenIsNotRecognised() throws {
        let h = AuthHarness(withOpaqueTokens: true)
        let error = try #require(try h.resolve(h.authorize(key: "someone-elses-token")).error)
        #expect(error.status == 401 && error.description.contains("not recognised"))
    }
}

/// A reload (`Authenticator.apply`) keeps what the loop learned about OAuth tokens.
@Suite struct OAuthTokensAcrossReloadTests {
    @Test func reloadKeepsCachedOpaqueTokensAndSwapsIntrospectionOnlyWhenAsked() throws {
        let h = AuthHarness(withOpaqueTokens: true)
        let token = "dbaudit_at_" + String(repeating: "R", count: 43)
        _ = h.opaqueStore.storeOpaqueAccessToken(
            hash: OpaqueAccessTokenFormat.hash(token),
            record: OpaqueAccessTokenRecord(
                clientID: "cid",
                subject: "usr",
                scopes: ["read:databases"],
                tokenID: "t",
                issuedAt: h.clock.now,
                expiresAt: h.clock.now + 600
            ),
            now: h.clock.now
        )
        #expect(try h.resolve(h.authorize(key: token)).successValue != nil)
        h.authenticator.apply(
            cache: CacheSettings(),
            jwt: nil,
            logger: Logger(label: "test"),
            opaqueTokenIssuer: "https://gateway.test"
        )
        // Still cached: answered synchronously, no second lookup.
        #expect(h.authorize(key: token).allowance != nil)
        #expect(h.opaqueStore.lookups == 1)
        // Another issuer name: the cached principals named the old one, so they go.
        h.authenticator.apply(
            cache: CacheSettings(),
            jwt: nil,
            logger: Logger(label: "test"),
            opaqueTokenIssuer: "https://other.test"
        )
        let principal = try #require(try h.resolve(h.authorize(key: token)).successValue ?? nil)
        #expect(principal.issuer == "https://other.test" && h.opaqueStore.lookups == 2)
        // Introspection is replaced only when the reload brings a new setup.
        #expect(h.authenticator.introspection == nil)
        let poster: HTTPPoster = { _, loop in
            loop.makeSucceededFuture(
                HTTPFetchResponse(status: 200, cacheControl: nil, body: Array(#"{"active":false}"#.utf8))
            )
        }
        let introspection = IntrospectionAuthenticator(
            endpoints: [
                IntrospectionSettings(endpoint: "https://as.test/i", clientID: "gw", clientSecret: Secret("s"))
            ],
            post: poster,
            shared: nil,
            eventLoop: h.loop,
            maximumEntries: 10,
            logger: Logger(label: "test"),
            clock: ManualClock(0).clock
        )
        h.authenticator.apply(
            cache: CacheSettings(),
            jwt: nil,
            logger: Logger(label: "test"),
            introspection: .some(introspection)
        )
        #expect(h.authenticator.introspection === introspection)
        h.authenticator.apply(cache: CacheSettings(), jwt: nil, logger: Logger(label: "test"))
        #expect(h.authenticator.introspection === introspection)
        h.authenticator.apply(
            cache: CacheSettings(),
            jwt: nil,
            logger: Logger(label: "test"),
            introspection: .some(nil)
        )
        #expect(h.authenticator.introspection == nil)
    }
}
