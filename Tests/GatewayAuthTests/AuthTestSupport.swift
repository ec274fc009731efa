import Foundation
import GatewayConfig
import GatewayCore
import GatewayCrypto
import GatewayStore
import GatewayTestSupport
import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import GatewayAuth

/// A `CredentialStore` that delegates to an `InMemoryCredentialStore`, counts the calls the
/// authenticator makes, and can be switched to fail every call with
/// `CredentialStoreError.unavailable` (or any other error), like a Redis outage.
final class CountingStore: CredentialStore {
    let inner: InMemoryCredentialStore
    var eventLoop: any EventLoop { self.inner.eventLoop }

    private(set) var apiKeyCalls = 0
    private(set) var touchCalls: [(id: String, time: Int64)] = []
    private(set) var revokeCalls = 0
    private(set) var createCalls = 0
    /// When set, every call fails with this error.
    var failure: (any Error)?

    init(_ inner: InMemoryCredentialStore) {
        self.inner = inner
    }

    /// When set, lookups wait until `releaseHeldLookups()` (a slow store).
    var holdLookups = false
    private var held: [(hash: String, promise: EventLoopPromise<APIKeyRecord?>)] = []

    func apiKey(hash: String) -> EventLoopFuture<APIKeyRecord?> {
        self.apiKeyCalls += 1
        if let failure { return self.eventLoop.makeFailedFuture(failure) }
        if holdLookups {
            let promise = self.eventLoop.makePromise(of: APIKeyRecord?.self)
            self.held.append((hash, promise))
            return promise.futureResult
        }
        return self.inner.apiKey(hash: hash)
    }

    func releaseHeldLookups() {
        let held = self.held
        self.held = []
        for (hash, promise) in held {
            self.inner.apiKey(hash: hash).cascade(to: promise)
        }
    }

    func apiKey(id: String) -> EventLoopFuture<APIKeyRecord?> {
        if let failure { return self.eventLoop.makeFailedFuture(failure) }
        return self.inner.apiKey(id: id)
    }

    func createAPIKey(_ record: APIKeyRecord, hash: String, maxPerOwner: Int?) -> EventLoopFuture<Void> {
        self.createCalls += 1
        if let failure { return self.eventLoop.makeFailedFuture(failure) }
        return self.inner.createAPIKey(record, hash: hash, maxPerOwner: maxPerOwner)
    }

    func listAPIKeys() -> EventLoopFuture<[APIKeyRecord]> {
        if let failure { return self.eventLoop.makeFailedFuture(failure) }
        return self.inner.listAPIKeys()
    }

    func listAPIKeys(owner: String?, offset: Int, limit: Int) -> EventLoopFuture<APIKeyPage> {
        if let failure { return self.eventLoop.makeFailedFuture(failure) }
        return self.inner.listAPIKeys(owner: owner, offset: offset, limit: limit)
    }

    func revokeAPIKey(id: String) -> EventLoopFuture<APIKeyRecord?> {
        self.revokeCalls += 1
        if let failure { return self.eventLoop.makeFailedFuture(failure) }
        return self.inner.revokeAPIKey(id: id)
    }

    func touchAPIKey(id: String, at time: Int64) -> EventLoopFuture<Void> {
        self.touchCalls.append((id, time))
        if let failure { return self.eventLoop.makeFailedFuture(failure) }
        return self.inner.touchAPIKey(id: id, at: time)
    }
}

/// Opaque access token records in a dictionary, counting lookups; `failure` makes every
/// call fail (a Redis outage); `holdLookups` keeps lookups pending until released.
final class FakeOpaqueTokenStore: OpaqueAccessTokenStore, @unchecked Sendable {
    let eventLoop: any EventLoop
    private(set) var records: [String: OpaqueAccessTokenRecord] = [:]
    private(set) var lookups = 0
    var failure: (any Error)?
    var holdLookups = false
    private var held: [(hash: String, promise: EventLoopPromise<OpaqueAccessTokenRecord?>)] = []

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func storeOpaqueAccessToken(hash: String, record: OpaqueAccessTokenRecord, now: Int64) -> EventLoopFuture<Void> {
        if let failure { return self.eventLoop.makeFailedFuture(failure) }
        self.records[hash] = record
        return self.eventLoop.makeSucceededVoidFuture()
    }

    func opaqueAccessToken(hash: String) -> EventLoopFuture<OpaqueAccessTokenRecord?> {
        self.lookups += 1
        if let failure { return self.eventLoop.makeFailedFuture(failure) }
        if self.holdLookups {
            let promise = self.eventLoop.makePromise(of: OpaqueAccessTokenRecord?.self)
            self.held.append((hash, promise))
            return promise.futureResult
        }
        return self.eventLoop.makeSucceededFuture(self.records[hash])
    }

    func releaseHeldLookups(answering records: [String: OpaqueAccessTokenRecord]) {
        let held = self.held
        self.held = []
        for (hash, promise) in held { promise.succeed(records[hash]) }
    }

    func revokeOpaqueAccessToken(hash: String) -> EventLoopFuture<Bool> {
        if let failure { return self.eventLoop.makeFailedFuture(failure) }
        return self.eventLoop.makeSucceededFuture(self.records.removeValue(forKey: hash) != nil)
    }
}

/// A 32-byte pepper.
let testPepper: [UInt8] = Array(0..<32)

/// The requirements the tests' routes would carry (the proxy's route table chooses them).
extension RouteRequirement {
    /// `GET /v1/databases`.
    static let readDatabases = RouteRequirement.scopes(["read:databases"])
    /// `POST /v1/databases`.
    static let writeDatabases = RouteRequirement.scopes(["write:databases", "read:databases"])
}

/// An authenticator on an `EmbeddedEventLoop` over an in-memory store, with a clock and a
/// counting store the test controls.
final class AuthHarness {
    static let startTime: Int64 = 1_700_000_000
    /// Entries stay fresh for as long as any test moves the clock (an hour), so only tests
    /// that choose a shorter `positive_ttl` see stale entries.
    static let longFreshCache: CacheSettings = {
        var cache = CacheSettings()
        cache.positiveTTL = .seconds(3600)
        return cache
    }()

    let loop: EmbeddedEventLoop
    let data: InMemoryCredentialData
    let store: CountingStore
    let clock: ManualClock
    let authenticator: Authenticator
    let service: APIKeyService
    /// Opaque OAuth access tokens (consulted only when built `withOpaqueTokens`).
    let opaqueStore: FakeOpaqueTokenStore

    init(
        cache: CacheSettings = AuthHarness.longFreshCache,
        pepper: [UInt8] = testPepper,
        maximumTrackedKeys: Int = 100_000,
        withOpaqueTokens: Bool = false,
        introspectionPoster: HTTPPoster? = nil
    ) {
        self.loop = EmbeddedEventLoop()
        let opaqueStore = FakeOpaqueTokenStore(eventLoop: self.loop)
        self.opaqueStore = opaqueStore
        self.data = InMemoryCredentialData()
        self.store = CountingStore(InMemoryCredentialStore(eventLoop: self.loop, data: self.data))
        let clock = ManualClock(Self.startTime)
        self.clock = clock
        self.authenticator = Authenticator(
            eventLoop: self.loop,
            store: self.store,
            hmac: HMACSHA256(key: pepper),
            cache: cache,
            logger: Logger(label: "test"),
            clock: clock.clock,
            maximumTrackedKeys: maximumTrackedKeys,
            opaqueTokens: withOpaqueTokens
                ? OpaqueTokenAuthenticator(
                    store: opaqueStore,
                    cache: cache,
                    issuer: "https://gateway.test",
                    logger: Logger(label: "test"),
                    clock: clock.clock
                )
                : nil,
            introspection: introspectionPoster.map { poster in
                IntrospectionAuthenticator(
                    endpoints: [
                        IntrospectionSettings(
                            endpoint: "https://as.test/introspect",
                            clientID: "gw",
                            clientSecret: Secret("s")
                        )
                    ],
                    post: poster,
                    shared: nil,
                    eventLoop: opaqueStore.eventLoop,
                    maximumEntries: 100,
                    logger: Logger(label: "test"),
                    clock: clock.clock
                )
            }
        )
        // Keys are created straight on the in-memory store so the counters only see the
        // authenticator's calls.
        self.service = APIKeyService(
            store: InMemoryCredentialStore(eventLoop: self.loop, data: self.data),
            hash: self.authenticator.hash(apiKey:)
        )
    }

    /// Creates a key through `APIKeyService`.
    func createKey(
        scopes: [String],
        expiresIn: Int64? = nil,
        test: Bool = false,
        owner: String = "alice"
    ) throws -> APIKeyService.Created {
        try value(
            of: self.service.create(
                name: "test key",
                scopes: scopes,
                expiresInSeconds: expiresIn,
                test: test,
                owner: owner,
                grantor: nil,
                now: self.clock.now
            ),
            on: self.loop
        )
    }

    func authorize(
        _ requirement: RouteRequirement = .readDatabases,
        authorization: [String],
        queryCarriesToken: Bool = false
    ) -> Authenticator.Outcome {
        self.authenticator.authorize(
            requirement,
            authorization: authorization,
            queryCarriesToken: queryCarriesToken
        )
    }

    func authorize(_ requirement: RouteRequirement = .readDatabases, key: String) -> Authenticator.Outcome {
        self.authorize(requirement, authorization: ["Bearer \(key)"])
    }

    /// The final decision of an outcome: the principal it allows, or the error it denies
    /// with; pending outcomes are resolved on the loop.
    func resolve(
        _ outcome: Authenticator.Outcome,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws
        -> Result<Principal?, GatewayError>
    {
        switch outcome {
        case .allow(let principal):
            return .success(principal)
        case .deny(let error):
            return .failure(error)
        case .pending(let future):
            let result = try #require(
                completion(of: future, on: self.loop),
                "the store answered synchronously, so the decision must be complete",
                sourceLocation: sourceLocation
            )
            switch result {
            case .success(let principal):
                return .success(principal)
            case .failure(let error as GatewayError):
                return .failure(error)
            case .failure(let error):
                Issue.record("pending outcome failed with a non-GatewayError \(error)", sourceLocation: sourceLocation)
                throw error
            }
        }
    }
}

extension Authenticator.Outcome {
    var isPending: Bool {
        if case .pending = self { return true }
        return false
    }

    /// The synchronous denial, if this is one.
    var denial: GatewayError? {
        if case .deny(let error) = self { return error }
        return nil
    }

    /// The synchronous allowance (`.some(nil)` on open routes), if this is one.
    var allowance: Principal?? {
        if case .allow(let principal) = self { return .some(principal) }
        return nil
    }
}

extension Result where Failure == GatewayError {
    var error: GatewayError? {
        if case .failure(let error) = self { return error }
        return nil
    }

    var successValue: Success? {
        if case .success(let value) = self { return value }
        return nil
    }
}

extension GatewayError {
    func header(_ name: String) -> String? {
        self.headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}
