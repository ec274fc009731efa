import GatewayAuth
import GatewayConfig
import GatewayCore
import GatewayCrypto
import GatewayRateLimit
import GatewayStore
import GatewayTestSupport
import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import GatewayProxy

/// The in-process store, counting the API key lookups the authenticator makes.
private final class LookupCountingStore: CredentialStore {
    let inner: InMemoryCredentialStore
    private(set) var lookups = 0
    var eventLoop: any EventLoop { self.inner.eventLoop }

    init(_ inner: InMemoryCredentialStore) { self.inner = inner }

    func apiKey(hash: String) -> EventLoopFuture<APIKeyRecord?> {
        self.lookups += 1
        return self.inner.apiKey(hash: hash)
    }
    func apiKey(id: String) -> EventLoopFuture<APIKeyRecord?> { self.inner.apiKey(id: id) }
    func createAPIKey(_ record: APIKeyRecord, hash: String, maxPerOwner: Int?) -> EventLoopFuture<Void> {
        self.inner.createAPIKey(record, hash: hash, maxPerOwner: maxPerOwner)
    }
    func listAPIKeys() -> EventLoopFuture<[APIKeyRecord]> { self.inner.listAPIKeys() }
    func listAPIKeys(owner: String?, offset: Int, limit: Int) -> EventLoopFuture<APIKeyPage> {
        self.inner.listAPIKeys(owner: owner, offset: offset, limit: limit)
    }
    func revokeAPIKey(id: String) -> EventLoopFuture<APIKeyRecord?> { self.inner.revokeAPIKey(id: id) }
    func touchAPIKey(id: String, at time: Int64) -> EventLoopFuture<Void> { self.inner.touchAPIKey(id: id, at: time) }
}

/// Opaque access tokens in process memory, counting lookups.
private final class CountingOpaqueStore: OpaqueAccessTokenStore, @unchecked Sendable {
    let inner: InMemoryOpaqueAccessTokenStore
    private(set) var lookups = 0

    init(_ inner: InMemoryOpaqueAccessTokenStore) { self.inner = inner }

    func storeOpaqueAccessToken(hash: String, record: OpaqueAccessTokenRecord, now: Int64) -> EventLoopFuture<Void> {
        self.inner.storeOpaqueAccessToken(hash: hash, record: record, now: now)
    }
    func opaqueAccessToken(hash: String) -> EventLoopFuture<OpaqueAccessTokenRecord?> {
        self.lookups += 1
        return self.inner.opaqueAccessToken(hash: hash)
    }
    func revokeOpaqueAccessToken(hash: String) -> EventLoopFuture<Bool> {
        self.inner.revokeOpaqueAccessToken(hash: hash)
    }
}

/// One event loop's authenticator with a failure budget over the local limiter, on a
/// manual clock.
private final class SprayHarness {
    let loop = EmbeddedEventLoop()
    let clock = ManualClock()
    let store: LookupCountingStore
    let authenticator: Authenticator
    let limiter: FailedAuthenticationLimiter
    let service: APIKeyService
    let opaque: CountingOpaqueStore

    init(failures: Int = 100, window: Int = 60) {
        let logger = Logger(label: "spray", factory: { _ in SwiftLogNoOpLogHandler() })
        let inner = InMemoryCredentialStore(eventLoop: self.loop, data: InMemoryCredentialData())
        self.store = LookupCountingStore(inner)
        var cache = CacheSettings()
        cache.positiveTTL = .seconds(3600)
        let opaque = CountingOpaqueStore(
            InMemoryOpaqueAccessTokenStore(
                eventLoop: self.loop,
                data: InMemoryOpaqueAccessTokenData(clock: self.clock.clock)
            )
        )
        self.opaque = opaque
        self.authenticator = Authenticator(
            eventLoop: self.loop,
            store: self.store,
            hmac: HMACSHA256(key: Array("spray-tests-pepper".utf8)),
            cache: cache,
            logger: logger,
            clock: self.clock.clock,
            opaqueTokens: OpaqueTokenAuthenticator(
                store: opaque,
                cache: cache,
                issuer: "https://gateway.test",
                logger: logger,
                clock: self.clock.clock
            )
        )
        self.limiter = FailedAuthenticationLimiter(
            policy: RateLimitPolicy.attempts("auth-failures-address", failures, windowSeconds: window),
            limiter: RateLimiter(
                eventLoop: self.loop,
                local: LocalRateLimiter(group: self.loop, clock: self.clock.clock),
                redis: nil,
                logger: logger
            ),
            clock: self.clock.clock,
            logger: logger
        )
        self.authenticator.failureLimit = self.limiter
        self.service = APIKeyService(store: inner, hash: self.authenticator.hash(apiKey:))
    }

    func createKey() throws -> String {
        try value(
            of: self.service.create(
                name: "good",
                scopes: ["read:databases"],
                expiresInSeconds: nil,
                test: false,
                owner: "alice",
                grantor: nil,
                now: self.clock.now
            ),
            on: self.loop
        ).key
    }

    /// The final answer for `key` from `client`: nil when allowed, else the error.
    func outcome(_ key: String, from client: String) throws -> GatewayError? {
        switch self.authenticator.authorize(
            .scopes(["read:databases"]),
            authorization: ["Bearer \(key)"],
            queryCarriesToken: false,
            client: client
        ) {
        case .allow: return nil
        case .deny(let error): return error
        case .pending(let future):
            let result = try #require(completion(of: future, on: self.loop))
            switch result {
            case .success: return nil
            case .failure(let error): return try #require(error as? GatewayError)
            }
        }
    }
}

/// A random key with a valid checksum: well formed, so only the store can refuse it.
private func guessedKey() -> String {
    APIKeyFormat.generate(test: false)
}

@Suite struct FailedAuthenticationLimiterTests {
    @Test func aSprayOf100000GuessedKeysCostsTheBudgetInLookupsAndGoodKeysStayCached() throws {
        let h = SprayHarness(failures: 100)
        let good = try h.createKey()
        let spare = try h.createKey()
        #expect(try h.outcome(good, from: "198.51.100.7") == nil)
        let lookupsBefore = h.store.lookups
        var unauthorized = 0
        var refused: [GatewayError] = []
        for index in 0..<100_000 {
            switch try h.outcome(guessedKey(), from: "198.51.100.7") {
            case let error? where error.status == 401: unauthorized += 1
            case let error? where error.status == 429: if refused.count < 3 { refused.append(error) }
            case let other: Issue.record("guess \(index): \(String(describing: other))")
            }
            if index.isMultiple(of: 1000) {
                // The good key, cached on this loop, is served from the cache all along.
                #expect(try h.outcome(good, from: "198.51.100.7") == nil)
            }
        }
        let lookups = h.store.lookups - lookupsBefore
        print(
            "spray of 100000 guessed keys (budget 100 per minute): \(lookups) store lookups, \(unauthorized) 401, \(100_000 - unauthorized) 429"
        )
        // Exactly the budget: the 100th failure took the last token.
        #expect(lookups == 100)
        #expect(unauthorized == 100)
        #expect(h.authenticator.failuresCharged == 100)
        #expect(h.authenticator.failureRefusals == 100_000 - 100)
        let first = try #require(refused.first)
        #expect(first.code == "too_many_attempts")
        #expect(first.headers.first { $0.name == "Retry-After" }?.value == "1", "100 per minute: a token every 0.6 s")
        #expect(first.headers.first { $0.name == "RateLimit-Policy" }?.value == "\"auth-failures-address\";q=100;w=60")
        #expect(
            first.headers.first { $0.name == "RateLimit" }?.value.hasPrefix("\"auth-failures-address\";r=0;t=") == true
        )

        // A valid key not cached yet is refused like a guess while the budget is spent...
        #expect(try h.outcome(spare, from: "198.51.100.7")?.status == 429)
        #expect(h.store.lookups - lookupsBefore == 100)
        // ...another address is not affected (and an IPv4 address is not its /64 neighbour)...
        #expect(try h.outcome(guessedKey(), from: "198.51.100.8")?.status == 401)
        #expect(try h.outcome(spare, from: "198.51.100.8") == nil)
        #expect(h.store.lookups - lookupsBefore == 102)
        // ...and after Retry-After a token is back (1.67 at 100 per minute): one guess takes
        // it, and the next is refused without a lookup.
        h.clock.advance(seconds: 1)
        #expect(try h.outcome(guessedKey(), from: "198.51.100.7")?.status == 401)
        #expect(try h.outcome(guessedKey(), from: "198.51.100.7")?.status == 429)
        #expect(h.store.lookups - lookupsBefore == 103)
    }

    @Test func anIPv6SubscriberSharesOneBudgetPerSlash64() throws {
        let h = SprayHarness(failures: 5)
        for index in 0..<5 {
            #expect(try h.outcome(guessedKey(), from: "2001:db8:1:2::\(index + 1)")?.status == 401)
        }
        // Another address of the same /64: spent.
        #expect(try h.outcome(guessedKey(), from: "2001:db8:1:2:ffff::9")?.status == 429)
        // The neighbouring /64 has its own budget.
        #expect(try h.outcome(guessedKey(), from: "2001:db8:1:3::1")?.status == 401)
        #expect(h.store.lookups == 6)
    }

    @Test func malformedAndNegativelyCachedKeysCountToo() throws {
        let h = SprayHarness(failures: 3)
        var wrongChecksum = Array(guessedKey())
        wrongChecksum[wrongChecksum.count - 1] = wrongChecksum.last == "A" ? "B" : "A"
        let bad = String(wrongChecksum)
        let unknown = guessedKey()
        #expect(try h.outcome(unknown, from: "203.0.113.5")?.status == 401)
        #expect(h.store.lookups == 1)
        // The same unknown key again: answered by the negative cache, still a failure.
        #expect(try h.outcome(unknown, from: "203.0.113.5")?.status == 401)
        #expect(try h.outcome(bad, from: "203.0.113.5")?.description.contains("malformed") == true)
        #expect(h.authenticator.failuresCharged == 3)
        // Spent: malformed keys and cached unknown keys get 429 now, the store never asked.
        #expect(try h.outcome(bad, from: "203.0.113.5")?.status == 429)
        #expect(try h.outcome(unknown, from: "203.0.113.5")?.status == 429)
        #expect(h.store.lookups == 1)
        #expect(h.authenticator.failureRefusals == 2)
        // A request without a credential is not a failed authentication.
        let missing = h.authenticator.authorize(
            .scopes(["read:databases"]),
            authorization: [],
            queryCarriesToken: false,
            client: "203.0.113.5"
        )
        guard case .deny(let error) = missing else {
            Issue.record("no credential must be denied")
            return
        }
        #expect(error.code == "missing_credential")
    }

    @Test func guessedOpaqueAccessTokensShareTheBudgetAndCachedOnesKeepWorking() throws {
        let h = SprayHarness(failures: 10)
        let (good, hash) = OpaqueAccessTokenFormat.generate()
        let record = OpaqueAccessTokenRecord(
            clientID: "app",
            subject: "alice",
            scopes: ["read:databases"],
            tokenID: "t1",
            issuedAt: h.clock.now,
            expiresAt: h.clock.now + 3600
        )
        _ = try value(of: h.opaque.storeOpaqueAccessToken(hash: hash, record: record, now: h.clock.now), on: h.loop)
        #expect(try h.outcome(good, from: "192.0.2.44") == nil)
        var statuses: [Int: Int] = [:]
        for _ in 0..<1_000 {
            let status = try h.outcome(OpaqueAccessTokenFormat.generate().token, from: "192.0.2.44")?.status ?? 200
            statuses[status, default: 0] += 1
        }
        #expect(statuses == [401: 10, 429: 990])
        #expect(h.opaque.lookups == 1 + 10)
        // Spent by opaque tokens: API key guesses are refused too, the cached token works.
        #expect(try h.outcome(guessedKey(), from: "192.0.2.44")?.status == 429)
        #expect(try h.outcome(good, from: "192.0.2.44") == nil)
        #expect(h.opaque.lookups == 11 && h.store.lookups == 0)
    }

    @Test func withoutAClientOrALimitNothingIsCounted() throws {
        let h = SprayHarness(failures: 1)
        h.authenticator.failureLimit = nil
        for _ in 0..<5 {
            #expect(try h.outcome(guessedKey(), from: "203.0.113.9")?.status == 401)
        }
        #expect(h.store.lookups == 5)
        #expect(h.authenticator.failuresCharged == 0)
    }
}
