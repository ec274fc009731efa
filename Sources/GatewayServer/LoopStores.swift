import GatewayConfig
import GatewayCore
import GatewayRateLimit
import GatewayRedis
import GatewayStore
import NIOCore

/// The stores one event loop talks to: made once per loop at start-up (`[redis]` cannot
/// change without a restart) and kept for the process's life, so a reload never drops a
/// connection or what a store holds. Built and used on that loop only.
struct LoopStores {
    /// Where one loop's pages keep codes, consents, browser sessions and flows: Redis (the
    /// loop's management connection; the OAuth store is the OAuth endpoint's) or, for the demo
    /// without Redis, process memory. Built on the loop, used only there.
    struct Pages {
        var oauth: any OAuthStore
        var browserState: any BrowserStateStore
    }

    /// The per-loop stores the OAuth endpoint needs besides the loop's own: made once per loop
    /// at start (on the loop's management Redis connection, off the request path's) and kept
    /// across reloads. Touched only on that loop.
    struct OAuth {
        var clients: any OAuthStore
        var opaqueTokens: any OpaqueAccessTokenStore
    }

    /// Where every loop's data lives, decided once per process.
    enum Backend: Sendable {
        case redis(RedisSettings)
        case memory(InMemoryData)
    }

    /// The request path's API keys.
    var credentials: any CredentialStore
    /// Users, refresh families, revoked JWT ids.
    var sessions: any SessionStore
    /// What `/v1/api-keys` and the pages use: with Redis on a connection of its own, so
    /// management traffic never queues in front of the request path's key lookups.
    var managementCredentials: any CredentialStore
    var managementSessions: any SessionStore
    /// Opaque OAuth access tokens on the request path (Redis only).
    var opaqueTokens: (any OpaqueAccessTokenStore)?
    /// Introspection answers every instance shares (Redis only).
    var introspectionCache: (any IntrospectionCacheStore)?
    /// Token buckets every instance shares (Redis only), on the request path's connection.
    var rateLimits: RedisRateLimiter?
    /// The browser pages' stores (nil when there is nowhere to keep them).
    var pages: Pages?
    /// The OAuth endpoint's stores (nil when there is nowhere to keep them).
    var oauth: OAuth?

    /// The stores of `backend` for `eventLoop`. Call on `eventLoop`.
    static func make(
        _ backend: Backend,
        on eventLoop: any EventLoop,
        clock: GatewayClock,
        events: RedisNodeEvents?
    ) -> LoopStores {
        switch backend {
        case .redis(let settings): return .redis(settings, on: eventLoop, clock: clock, events: events)
        case .memory(let data): return .memory(data, on: eventLoop)
        }
    }

    /// Redis-backed stores on two connections of `eventLoop`: the request path's and the
    /// management one. Call on `eventLoop`.
    static func redis(
        _ redis: RedisSettings,
        on eventLoop: any EventLoop,
        clock: GatewayClock,
        events: RedisNodeEvents?
    ) -> LoopStores {
        let client = RedisClient(
            eventLoop: eventLoop,
            settings: redis,
            connector: RedisConnectors.posix,
            clock: clock,
            events: events
        )
        // Told about failovers like the request path's: it writes revocations, which must go
        // to the primary the sentinels name.
        let management = RedisClient(
            eventLoop: eventLoop,
            settings: redis,
            connector: RedisConnectors.posix,
            clock: clock,
            events: events
        )
        let prefix = redis.storeKeyPrefix
        // The pages and the OAuth endpoint share one OAuth store on the management connection.
        let oauthStore = RedisOAuthStore(client: management, keyPrefix: prefix)
        return LoopStores(
            credentials: RedisCredentialStore(client: client, settings: redis),
            sessions: RedisSessionStore(client: client, keyPrefix: prefix),
            managementCredentials: RedisCredentialStore(client: management, settings: redis),
            managementSessions: RedisSessionStore(client: management, keyPrefix: prefix),
            opaqueTokens: RedisOpaqueAccessTokenStore(client: client, keyPrefix: prefix),
            introspectionCache: RedisIntrospectionCache(client: client, keyPrefix: prefix),
            rateLimits: RedisRateLimiter(client: client),
            pages: Pages(
                oauth: oauthStore,
                browserState: RedisBrowserStateStore(client: management, keyPrefix: prefix)
            ),
            oauth: OAuth(
                clients: oauthStore,
                opaqueTokens: RedisOpaqueAccessTokenStore(client: management, keyPrefix: prefix)
            )
        )
    }

    /// Stores over the process-local `data`. Call on `eventLoop`.
    static func memory(_ data: InMemoryData, on eventLoop: any EventLoop) -> LoopStores {
        let credentials = InMemoryCredentialStore(eventLoop: eventLoop, data: data.credentials)
        let sessions = InMemorySessionStore(eventLoop: eventLoop, data: data.sessions)
        var stores = LoopStores(
            credentials: credentials,
            sessions: sessions,
            managementCredentials: credentials,
            managementSessions: sessions
        )
        if let oauth = data.oauth {
            let oauthStore = InMemoryOAuthStore(eventLoop: eventLoop, data: oauth.clients)
            stores.pages = Pages(
                oauth: oauthStore,
                browserState: InMemoryBrowserStateStore(eventLoop: eventLoop, data: oauth.browser)
            )
            stores.oauth = OAuth(
                clients: oauthStore,
                opaqueTokens: InMemoryOpaqueAccessTokenStore(eventLoop: eventLoop, data: oauth.opaqueTokens)
            )
        }
        return stores
    }
}
