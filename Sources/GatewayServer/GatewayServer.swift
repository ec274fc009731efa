import Foundation
package import GatewayAuth
package import GatewayConfig
package import GatewayCore
import GatewayCrypto
import GatewayPages
package import GatewayProxy
import GatewayRateLimit
import GatewayRedis
package import GatewayStore
import GatewayTLS
package import Logging
import NIOConcurrencyHelpers
package import NIOCore
package import NIOPosix

/// The running gateway: event loops, one `LoopContext` per loop, the listeners, and the
/// operations that change them as a whole (start, reload, drain).
///
/// Methods are called from the lifecycle task (start-up, the SIGHUP loop, shutdown),
/// never from an event loop; each change reaches a loop as a task run on that loop.
package final class GatewayServer: Sendable {
    package let group: MultiThreadedEventLoopGroup
    private let ownsGroup: Bool
    private let contexts: [NIOLoopBound<LoopContext>]
    private let tracker: ConnectionTracker
    private let state: NIOLockedValueBox<State>
    private let connector: UpstreamConnector
    private let subscriber: RevocationSubscriber?
    /// Follows the sentinels' `+switch-master` (nil unless `[redis] sentinels`).
    private let sentinelWatcher: SentinelWatcher?
    /// What every Redis connection of the process hears and reports (nil without `[redis]`).
    let redisEvents: RedisNodeEvents?
    /// Keeps external issuers' JWKS fresh (nil without remote issuers); replaced on reload
    /// when `[auth.jwt]` changes.
    private let refresher: NIOLockedValueBox<JWKSRefresher?>
    /// Keeps the `[[sso.providers]]`' ID-token keys fresh (nil without providers); replaced
    /// on reload when the providers' key sources change.
    private let ssoRefresher: NIOLockedValueBox<JWKSRefresher?>
    /// Each loop's provider keys and discovery documents (they outlive reloads).
    private let ssoRings: [NIOLoopBound<SSOKeyRing>]
    /// Runs scrypt for logins off the event loops.
    private let passwordPool: NIOThreadPool
    private let memorySessions: InMemorySessionData?
    /// The one clock of the process: every loop, store and limiter reads this one.
    package let clock: GatewayClock
    /// A Redis connection of its own for `/readyz` probes (nil without `[redis]`).
    let redisProbe: NIOLoopBound<RedisClient>?
    /// Why the TLS contexts of the initial configuration could not be built; `start()`
    /// throws it (the initializer cannot).
    private let tlsSetupError: TLSSetupError?

    private struct State {
        var configuration: GatewayConfiguration
        var logger: Logger
        var listeners: [any Channel] = []
        var reloads = 0
        var reloadFailures = 0
        var draining = false
        /// The TLS contexts in force (each loop holds the same ones).
        var tls = GatewayTLSContexts()
    }

    var loopContexts: [NIOLoopBound<LoopContext>] { self.contexts }
    var isDraining: Bool { self.state.withLockedValue { $0.draining } }
    var lifecycleCounters: (reloads: Int, reloadFailures: Int, refused: Int) {
        let (reloads, failures) = self.state.withLockedValue { ($0.reloads, $0.reloadFailures) }
        return (reloads, failures, self.tracker.refusedConnections)
    }

    /// How many event loops `server` asks for (`event_loops = 0`: one per core).
    package static func eventLoopCount(_ server: ServerSettings) -> Int {
        server.eventLoops == 0 ? System.coreCount : server.eventLoops
    }

    /// Creates the event loops and per-loop contexts; nothing is bound until `start()`.
    /// - Parameter memoryStore: the process-local credential data when `[redis]` is not
    ///   configured (the demo seeds it); nil makes an empty one.
    package init(
        configuration: GatewayConfiguration,
        logger: Logger,
        group: MultiThreadedEventLoopGroup? = nil,
        connector: UpstreamConnector? = nil,
        memoryStore: InMemoryCredentialData? = nil,
        fetcher: HTTPFetcher? = nil,
        clock: GatewayClock = .system
    ) throws {
        self.clock = clock
        let identityRuntime = try IdentityRuntime.build(configuration.jwt) { problem in
            logger.warning("JWKS key ignored", metadata: ["reason": "\(problem)"])
        }
        self.group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: Self.eventLoopCount(configuration.server))
        self.ownsGroup = group == nil
        let connector = connector ?? UpstreamConnectors.tcp
        self.connector = connector
        let hmac = HMACSHA256(key: configuration.apiKeys.pepper.map { Array($0.value.utf8) } ?? SecureRandom.bytes(32))
        // Revocations reach every loop's cache: through this box once the contexts exist.
        let fanOut = NIOLockedValueBox<[NIOLoopBound<LoopContext>]>([])
        let invalidate: @Sendable (String) -> Void = { hash in
            for context in fanOut.withLockedValue({ $0 }) {
                context.eventLoop.execute { context.value.authenticator.invalidate(apiKeyHash: hash) }
            }
        }
        let invalidateOpaqueToken: @Sendable (String) -> Void = { hash in
            for context in fanOut.withLockedValue({ $0 }) {
                context.eventLoop.execute { context.value.authenticator.invalidate(opaqueAccessTokenHash: hash) }
            }
        }
        let memoryData =
            configuration.redis == nil ? (memoryStore ?? InMemoryCredentialData(onRevoke: invalidate)) : nil
        let revokeTokenID: @Sendable (String, Int64) -> Void = { id, expiresAt in
            for context in fanOut.withLockedValue({ $0 }) {
                context.eventLoop.execute { context.value.jwtAuthenticator?.revoke(tokenID: id, expiresAt: expiresAt) }
            }
        }
        let memorySessions = configuration.redis == nil ? InMemorySessionData(onRevokeTokenID: revokeTokenID) : nil
        // OAuth without Redis: only the demo builds such a configuration (a file with
        // [oauth] needs [redis]); its codes, consents and browser state live here.
        let memoryOAuth =
            configuration.redis == nil && configuration.oauth != nil
            ? (
                oauth: InMemoryOAuthData(),
                browser: InMemoryBrowserStateData(clock: clock),
                opaque: InMemoryOpaqueAccessTokenData(clock: clock)
            )
            : nil
        self.memorySessions = memorySessions
        let passwordPool = NIOThreadPool(numberOfThreads: max(1, min(System.coreCount, 4)))
        passwordPool.start()
        self.passwordPool = passwordPool
        let checkPassword = Self.passwordCheck(on: passwordPool)
        let refresherBox = NIOLockedValueBox<JWKSRefresher?>(nil)
        self.refresher = refresherBox
        let refetch = Self.refetch(through: refresherBox)
        // One shard per loop, shared by all: a principal's local bucket is exact process-wide.
        let localLimiter = LocalRateLimiter(group: self.group, clock: clock)
        let tls: GatewayTLSContexts
        do {
            tls = try Self.makeTLSContexts(configuration)
            self.tlsSetupError = nil
        } catch {
            tls = GatewayTLSContexts()
            self.tlsSetupError = error
        }
        // Client TLS contexts of identity providers, shared by JWKS fetches and introspection.
        let httpTLS = HTTPFetchers.TLSContexts()
        self.httpTLS = httpTLS
        Self.prepareIntrospectionTLS(configuration, contexts: httpTLS, logger: logger)
        let poster = HTTPFetchers.poster(tlsContexts: httpTLS)
        Self.prepareSSOTLS(configuration, contexts: httpTLS, logger: logger)
        let fetcher = fetcher ?? HTTPFetchers.posix(group: self.group, tlsContexts: httpTLS)
        let ssoRefresherBox = NIOLockedValueBox<JWKSRefresher?>(nil)
        self.ssoRefresher = ssoRefresherBox
        var ssoRings: [NIOLoopBound<SSOKeyRing>] = []
        var contexts: [NIOLoopBound<LoopContext>] = []
        let redisEvents = configuration.redis.map { _ in RedisNodeEvents(logger: logger) }
        self.redisEvents = redisEvents
        for loop in self.group.makeIterator() {
            // Built here, before the loop serves anything, and only touched on the loop after.
            let context = try! loop.submit {
                let store: any CredentialStore
                let sessions: any SessionStore
                var redisLimiter: RedisRateLimiter?
                var managementStore: (any CredentialStore)?
                var managementSessions: (any SessionStore)?
                var pageStores: PageStores?
                var opaqueTokens: (any OpaqueAccessTokenStore)?
                var oauthStores: OAuthLoopStores?
                var introspectionCache: (any IntrospectionCacheStore)?
                if let redis = configuration.redis {
                    let client = RedisClient(
                        eventLoop: loop,
                        settings: redis,
                        connector: RedisConnectors.posix,
                        clock: clock,
                        events: redisEvents
                    )
                    store = RedisCredentialStore(client: client, keyPrefix: redis.storeKeyPrefix)
                    sessions = RedisSessionStore(client: client, keyPrefix: redis.storeKeyPrefix)
                    redisLimiter = RedisRateLimiter(client: client)
                    opaqueTokens = RedisOpaqueAccessTokenStore(client: client, keyPrefix: redis.storeKeyPrefix)
                    introspectionCache = RedisIntrospectionCache(client: client, keyPrefix: redis.storeKeyPrefix)
                    // `/v1/api-keys` gets its own connection: a burst of management calls
                    // queues there, not in front of this loop's key lookups.
                    let management = RedisClient(
                        eventLoop: loop,
                        settings: redis,
                        connector: RedisConnectors.posix,
                        clock: clock,
                        events: redisEvents
                    )
                    managementStore = RedisCredentialStore(client: management, keyPrefix: redis.storeKeyPrefix)
                    managementSessions = RedisSessionStore(client: management, keyPrefix: redis.storeKeyPrefix)
                    // The pages and the OAuth endpoint share one OAuth store on that connection.
                    let oauthStore = RedisOAuthStore(client: management, keyPrefix: redis.storeKeyPrefix)
                    pageStores = PageStores(
                        oauth: oauthStore,
                        browserState: RedisBrowserStateStore(client: management, keyPrefix: redis.storeKeyPrefix)
                    )
                    oauthStores = OAuthLoopStores(
                        clients: oauthStore,
                        opaqueTokens: RedisOpaqueAccessTokenStore(client: management, keyPrefix: redis.storeKeyPrefix)
                    )
                } else {
                    store = InMemoryCredentialStore(eventLoop: loop, data: memoryData!)
                    sessions = InMemorySessionStore(eventLoop: loop, data: memorySessions!)
                    if let memoryOAuth {
                        let oauthStore = InMemoryOAuthStore(eventLoop: loop, data: memoryOAuth.oauth)
                        pageStores = PageStores(
                            oauth: oauthStore,
                            browserState: InMemoryBrowserStateStore(eventLoop: loop, data: memoryOAuth.browser)
                        )
                        oauthStores = OAuthLoopStores(
                            clients: oauthStore,
                            opaqueTokens: InMemoryOpaqueAccessTokenStore(eventLoop: loop, data: memoryOAuth.opaque)
                        )
                    }
                }
                let context = LoopContext(
                    eventLoop: loop,
                    configuration: configuration,
                    connector: connector,
                    logger: logger,
                    store: store,
                    hmac: hmac,
                    identity: identityRuntime.map {
                        LoopIdentity(runtime: $0, sessions: sessions, refetch: refetch, checkPassword: checkPassword)
                    },
                    sessionStore: sessions,
                    rateLimiter: RateLimiter(eventLoop: loop, local: localLimiter, redis: redisLimiter, logger: logger),
                    tls: tls,
                    managementStore: managementStore,
                    managementSessions: managementSessions,
                    opaqueTokenStore: opaqueTokens,
                    introspection: LoopIntrospection(post: poster, shared: introspectionCache),
                    clock: clock
                )
                let ssoRing = SSOKeyRing()
                // The pages first: the OAuth endpoint answers every other /oauth/ path.
                context.installLocalEndpoints { context in
                    let pages: (any LocalEndpoint)? = Self.authorizePages(context, stores: pageStores)
                    let oauth: (any LocalEndpoint)? = Self.oauthEndpoint(
                        context,
                        stores: oauthStores,
                        pool: passwordPool
                    )
                    let settings: (any LocalEndpoint)? = Self.settingsPages(context, stores: pageStores)
                    let sso: (any LocalEndpoint)? = Self.ssoEndpoint(
                        context,
                        stores: pageStores,
                        keyRing: ssoRing,
                        fetcher: fetcher,
                        poster: poster,
                        refresher: ssoRefresherBox
                    )
                    return [pages, oauth, settings, sso].compactMap { $0 }
                }
                return (context, ssoRing)
            }.map { (built: (LoopContext, SSOKeyRing)) in
                (NIOLoopBound(built.0, eventLoop: loop), NIOLoopBound(built.1, eventLoop: loop))
            }.wait()
            ssoRings.append(context.1)
            contexts.append(context.0)
        }
        self.contexts = contexts
        self.ssoRings = ssoRings
        fanOut.withLockedValue { $0 = contexts }
        if let redis = configuration.redis, let loop = contexts.first?.eventLoop {
            let all = contexts
            self.subscriber = RevocationSubscriber(
                eventLoop: loop,
                settings: redis,
                connector: RedisConnectors.posix,
                events: redisEvents,
                logger: logger,
                onRevoke: invalidate,
                onRevokeTokenID: revokeTokenID,
                onRevokeOpaqueToken: invalidateOpaqueToken,
                onResubscribed: {
                    let failover = redis.sentinel != nil
                    for context in all {
                        context.eventLoop.execute {
                            if failover {
                                // A switch of primaries: known keys stay usable within
                                // stale_grace, but each is checked again before it is trusted.
                                context.value.authenticator.revalidateAll()
                            } else {
                                context.value.authenticator.invalidateAll()
                            }
                            // Revocations missed while away: forget verified tokens too.
                            context.value.jwtAuthenticator?.removeAll()
                        }
                    }
                }
            )
            self.sentinelWatcher = SentinelWatcher(
                eventLoop: loop,
                settings: redis,
                connector: RedisConnectors.posix,
                events: redisEvents!,
                logger: logger
            )
        } else {
            self.subscriber = nil
            self.sentinelWatcher = nil
        }
        if let redis = configuration.redis, let loop = contexts.first?.eventLoop {
            self.redisProbe = try! loop.submit {
                NIOLoopBound(
                    RedisClient(
                        eventLoop: loop,
                        settings: redis,
                        connector: RedisConnectors.posix,
                        clock: clock,
                        events: redisEvents
                    ),
                    eventLoop: loop
                )
            }.wait()
        } else {
            self.redisProbe = nil
        }
        self.tracker = ConnectionTracker(limit: configuration.server.maxConnections, clock: clock)
        var state = State(configuration: configuration, logger: logger)
        state.tls = tls
        self.state = NIOLockedValueBox(state)
        self.fetcher = fetcher
        refresherBox.withLockedValue { $0 = self.makeRefresher(identityRuntime, logger: logger) }
        let ssoRefresher = Self.makeSSORefresher(
            configuration,
            rings: ssoRings,
            group: self.group,
            fetcher: fetcher,
            logger: logger,
            clock: clock
        )
        ssoRefresherBox.withLockedValue { $0 = ssoRefresher }
    }

    private let fetcher: HTTPFetcher
    private let httpTLS: HTTPFetchers.TLSContexts

    /// Builds the client TLS context of every https introspection endpoint now, off the
    /// event loops, so the first introspection never reads a CA file on one.
    private static func prepareIntrospectionTLS(
        _ configuration: GatewayConfiguration,
        contexts: HTTPFetchers.TLSContexts,
        logger: Logger
    ) {
        for entry in configuration.introspection where entry.endpoint.lowercased().hasPrefix("https:") {
            do {
                _ = try contexts.context(caFile: entry.caFile)
            } catch {
                logger.error(
                    "introspection endpoint TLS setup failed; its tokens get 503 until fixed",
                    metadata: ["endpoint": "\(entry.endpoint)", "error": "\(error)"]
                )
            }
        }
    }

    /// scrypt checks for logins on `pool`, off the event loops.
    private static func passwordCheck(on pool: NIOThreadPool) -> PasswordCheck {
        { password, encoded, loop in
            pool.runIfActive(eventLoop: loop) { PasswordHasher.verify(password: password, encoded: encoded) }
        }
    }

    /// Unknown-kid refetches through whichever refresher is current (a reload swaps it).
    private static func refetch(through box: NIOLockedValueBox<JWKSRefresher?>) -> UnknownKeyRefetch {
        { issuer, _, loop in
            guard let refresher = box.withLockedValue({ $0 }) else { return nil }
            return refresher.refetch(issuer: issuer, from: loop)
        }
    }

    /// A refresher for `runtime`'s remote issuers that installs key sets on every loop.
    private func makeRefresher(_ runtime: IdentityRuntime?, logger: Logger) -> JWKSRefresher? {
        guard let runtime, !runtime.remoteIssuers.isEmpty, let loop = self.contexts.first?.eventLoop else { return nil }
        let contexts = self.contexts
        let group = self.group
        return JWKSRefresher(
            eventLoop: loop,
            issuers: runtime.remoteIssuers,
            fetcher: self.fetcher,
            logger: logger,
            clock: self.clock,
            install: { issuer, keys in
                let installs = contexts.map { context in
                    context.eventLoop.submit { context.value.jwtAuthenticator?.installKeys(issuer: issuer, keys: keys) }
                }
                return EventLoopFuture.andAllSucceed(installs, on: group.next())
            }
        )
    }

    /// How many JWKS fetches of `issuer` started (tests).
    package func jwksFetchCount(issuer: String) async throws -> Int {
        guard let refresher = self.refresher.withLockedValue({ $0 }) else { return 0 }
        return try await refresher.fetchCount(issuer: issuer).get()
    }

    package var configuration: GatewayConfiguration { self.state.withLockedValue { $0.configuration } }
    package var openConnections: Int { self.tracker.openConnections }

    /// The addresses actually bound (ports resolved when the config said 0).
    package var boundAddresses: [SocketAddress] {
        self.state.withLockedValue { $0.listeners.compactMap(\.localAddress) }
    }

    /// Opens the listeners: the sockets a service manager passed (`LISTEN_FDS`, checked
    /// against an explicit `[server] listen`), else every `listen` address bound with
    /// `SO_REUSEPORT`. Throws (keeping nothing open) if any fails.
    package func start() async throws {
        let (configuration, logger) = self.state.withLockedValue { ($0.configuration, $0.logger) }
        if let error = self.tlsSetupError {
            logger.critical("cannot load TLS certificates", metadata: ["problems": "\(error.description)"])
            throw error
        }
        let plan: [(label: String, socket: ListenSocket)]
        do {
            plan = try Self.listenPlan(configuration.server, logger: logger)
        } catch {
            logger.critical("cannot use the sockets passed by the service manager", metadata: ["problem": "\(error)"])
            throw error
        }
        self.subscriber?.start()
        self.sentinelWatcher?.start()
        self.refresher.withLockedValue { $0 }?.start()
        self.ssoRefresher.withLockedValue { $0 }?.start()
        var bound: [any Channel] = []
        do {
            for (label, socket) in plan {
                let channel: any Channel
                do {
                    channel = try await self.open(socket, logger: logger, tls: configuration.server.tls != nil)
                } catch {
                    throw ListenError.classify(error, address: label, listener: "listener") ?? error
                }
                bound.append(channel)
                let local = channel.localAddress.flatMap { address in
                    address.ipAddress.map { ListenAddress(host: $0, port: address.port ?? 0).description }
                }
                var metadata: Logger.Metadata = [
                    "address": "\(local ?? label)", "tls": "\(configuration.server.tls != nil)",
                ]
                if case .inherited(let descriptor) = socket { metadata["socket_activation_fd"] = "\(descriptor)" }
                logger.notice("listening", metadata: metadata)
            }
        } catch {
            for channel in bound { try? await channel.close() }
            throw error
        }
        self.state.withLockedValue { $0.listeners = bound }
    }

    /// Where one listener comes from. A value built and used by `start()`.
    enum ListenSocket {
        /// Passed by the service manager (socket activation).
        case inherited(Int32)
        /// Opened by the gateway.
        case own(ListenAddress)
    }

    /// The listeners to open, each with its label for messages.
    private static func listenPlan(
        _ server: ServerSettings,
        logger: Logger
    ) throws -> [(label: String, socket: ListenSocket)] {
        let own = server.listen.map { (label: $0.description, socket: ListenSocket.own($0)) }
        switch try ListenSockets.takeInherited() {
        case .none:
            return own
        case .ignored(let reason):
            logger.warning(
                "socket activation variables ignored; binding listen addresses",
                metadata: ["reason": "\(reason)"]
            )
            return own
        case .sockets(let sockets):
            // Host names in `listen` compare by the address they resolve to.
            let configured = server.listen.map { address in
                let resolved = try? SocketAddress.makeAddressResolvingHost(address.host, port: address.port).ipAddress
                return ListenAddress(host: resolved ?? address.host, port: address.port)
            }
            let assigned = try SocketActivation.assign(
                sockets,
                configured: configured,
                explicit: server.listenIsExplicit
            )
            return assigned.map { (label: $0.address.description, socket: ListenSocket.inherited($0.descriptor)) }
        }
    }

    /// - Parameter tls: the listener terminates TLS (fixed for its lifetime; the context
    ///   and handshake timeout come from the loop's configuration at each accept, so a
    ///   reload's new certificate serves new connections).
    private func open(_ socket: ListenSocket, logger: Logger, tls: Bool) async throws -> any Channel {
        let bootstrap = self.bootstrap(logger: logger, tls: tls)
        switch socket {
        case .inherited(let descriptor):
            let channel = try await bootstrap.withBoundSocket(descriptor).get()
            ListenSockets.relisten(descriptor, backlog: ListenSockets.inheritedBacklog)
            return channel
        case .own(let address):
            let resolved = try SocketAddress.makeAddressResolvingHost(address.host, port: address.port)
            let descriptor = try ListenSockets.open(resolved)
            let channel: any Channel
            do {
                channel = try await bootstrap.withBoundSocket(descriptor).get()
            } catch {
                close(descriptor)
                throw error
            }
            ListenSockets.relisten(descriptor, backlog: ListenSockets.ownBacklog)
            return channel
        }
    }

    private func bootstrap(logger: Logger, tls: Bool) -> ServerBootstrap {
        let tracker = self.tracker
        let contexts = Dictionary(uniqueKeysWithValues: self.contexts.map { (ObjectIdentifier($0.eventLoop), $0) })
        return ServerBootstrap(group: self.group)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.socketOption(.so_keepalive), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // A failed initializer makes NIO close the accepted socket.
                    guard tracker.admit(channel) else {
                        if tracker.shouldLogRefusal() {
                            logger.warning(
                                "connection refused: max_connections reached",
                                metadata: [
                                    "open": "\(tracker.openConnections)",
                                    "refused_total": "\(tracker.refusedConnections)",
                                ]
                            )
                        }
                        throw ConnectionRefused()
                    }
                    guard let context = contexts[ObjectIdentifier(channel.eventLoop)] else {
                        throw ChannelError.ioOnClosedChannel
                    }
                    let loop = context.value
                    let sync = channel.pipeline.syncOperations
                    if tls {
                        guard let server = loop.tls.server, let settings = loop.configuration.server.tls else {
                            throw ChannelError.ioOnClosedChannel
                        }
                        try sync.addHandler(
                            TLSHandler(
                                context: server,
                                mode: .server,
                                handshakeTimeout: settings.handshakeTimeout.timeAmount
                            )
                        )
                        try ProxyPipeline.configure(channel: channel, loop: loop, clientScheme: "https")
                    } else {
                        try ProxyPipeline.configure(channel: channel, loop: loop)
                    }
                    // Right after the head timeout handler: it sees each request head's phase event.
                    let headTimeout = try sync.handler(type: RequestHeadTimeoutHandler.self)
                    try sync.addHandler(FirstRequestDrainGate(), position: .after(headTimeout))
                }
            }
    }

    private struct ConnectionRefused: Error {}

    /// Creates an API key in this gateway's store (the demo seeds one this way).
    package func createAPIKey(
        name: String,
        scopes: [String],
        test: Bool,
        owner: String
    ) async throws -> APIKeyService.Created {
        guard let context = self.contexts.first else { throw ConnectionRefused() }
        let now = self.clock.unixSeconds()
        return try await context.eventLoop.flatSubmit {
            let loop = context.value
            let service = APIKeyService(store: loop.store, hash: loop.authenticator.hash(apiKey:))
            return service.create(
                name: name,
                scopes: scopes,
                expiresInSeconds: nil,
                test: test,
                owner: owner,
                grantor: nil,
                now: now
            )
        }.get()
    }

    /// Adds a user to this process's in-memory session store (the demo seeds one this way;
    /// with `[redis]` use `users add`).
    package func createUser(email: String, scopes: [String], password: String) async throws {
        guard let data = self.memorySessions else { throw ConnectionRefused() }
        let cost = self.configuration.jwt.passwordHashCost
        let hash = try PasswordHasher.hash(password: password, cost: cost)
        let user = UserRecord(
            id: "usr_" + Base64URL.encode(SecureRandom.bytes(12)),
            email: email.lowercased(),
            scopes: scopes,
            passwordHash: hash,
            createdAt: self.clock.unixSeconds()
        )
        guard let context = self.contexts.first else { throw ConnectionRefused() }
        try await context.eventLoop.flatSubmit {
            InMemorySessionStore(eventLoop: context.eventLoop, data: data).createUser(user)
        }.get()
    }

    /// Applies a new configuration to every loop. Listener addresses and event-loop count
    /// cannot change without a restart; such changes are logged and ignored.
    /// - Parameter tls: the TLS contexts built from `newConfiguration`; nil keeps the
    ///   current ones.
    package func apply(
        _ newConfiguration: GatewayConfiguration,
        logger newLogger: Logger,
        tls newTLS: GatewayTLSContexts? = nil,
        identity: IdentityRuntime? = nil
    ) async {
        var effective = newConfiguration
        let (old, oldTLS) = self.state.withLockedValue { ($0.configuration, $0.tls) }
        var tls = newTLS ?? oldTLS
        if (newConfiguration.server.tls == nil) != (old.server.tls == nil) {
            newLogger.warning("reload: [server.tls] was added or removed; restart the gateway to apply it")
            effective.server.tls = old.server.tls
            tls.server = oldTLS.server
        }
        if newConfiguration.server.listen != old.server.listen {
            newLogger.warning("reload: server.listen changed; restart the gateway to apply it")
            effective.server.listen = old.server.listen
        }
        if newConfiguration.server.eventLoops != old.server.eventLoops {
            newLogger.warning("reload: server.event_loops changed; restart the gateway to apply it")
            effective.server.eventLoops = old.server.eventLoops
        }
        if newConfiguration.redis != old.redis {
            newLogger.warning("reload: [redis] changed; restart the gateway to apply it")
            effective.redis = old.redis
        }
        if newConfiguration.admin != old.admin {
            // The admin listener is bound once, at start, with its token.
            newLogger.warning("reload: [admin] changed; restart the gateway to apply it")
            effective.admin = old.admin
        }
        if newConfiguration.apiKeys.pepper != old.apiKeys.pepper {
            newLogger.warning("reload: the API-key pepper changed; restart the gateway to apply it")
            effective.apiKeys.pepper = old.apiKeys.pepper
        }
        self.tracker.updateLimit(effective.server.maxConnections)
        let snapshot = effective
        // `[auth.jwt]` changed: new verifiers (and a new refresher) from the new runtime,
        // built and validated by `reload` before anything was applied.
        let identityChange: IdentityRuntime?? = newConfiguration.jwt != old.jwt ? .some(identity) : nil
        if identityChange != nil {
            let previous = self.refresher.withLockedValue { $0 }
            previous?.stop()
            let next = self.makeRefresher(identity, logger: newLogger)
            self.refresher.withLockedValue { $0 = next }
            next?.start()
        }
        Self.prepareIntrospectionTLS(snapshot, contexts: self.httpTLS, logger: newLogger)
        if Self.ssoIssuers(snapshot) != Self.ssoIssuers(old) {
            // Providers added, removed or pointed elsewhere: a refresher for the new set.
            Self.prepareSSOTLS(snapshot, contexts: self.httpTLS, logger: newLogger)
            let next = Self.makeSSORefresher(
                snapshot,
                rings: self.ssoRings,
                group: self.group,
                fetcher: self.fetcher,
                logger: newLogger,
                clock: self.clock
            )
            let previous = self.ssoRefresher.withLockedValue { current in
                defer { current = next }
                return current
            }
            previous?.stop()
            next?.start()
        }
        let checkPassword = Self.passwordCheck(on: self.passwordPool)
        let refetch = Self.refetch(through: self.refresher)
        let memorySessions = self.memorySessions
        let contexts = tls
        var futures: [EventLoopFuture<Void>] = []
        for context in self.contexts {
            futures.append(
                context.eventLoop.submit {
                    let loopIdentity: LoopIdentity?? = identityChange.map { runtime in
                        runtime.map { runtime in
                            let sessions: any SessionStore =
                                context.value.sessionStore
                                ?? InMemorySessionStore(
                                    eventLoop: context.eventLoop,
                                    data: memorySessions ?? InMemorySessionData()
                                )  // only in tests without a server-built store
                            return LoopIdentity(
                                runtime: runtime,
                                sessions: sessions,
                                refetch: refetch,
                                checkPassword: checkPassword
                            )
                        }
                    }
                    context.value.apply(snapshot, logger: newLogger, tls: contexts, identity: loopIdentity)
                }
            )
        }
        for future in futures { try? await future.get() }
        self.state.withLockedValue {
            $0.tls = contexts
            $0.configuration = snapshot
            $0.logger = newLogger
            $0.reloads += 1
        }
    }

    /// Reads `path`, validates it and applies it; a bad file leaves everything as it was.
    /// Returns whether the new configuration is in force.
    @discardableResult
    package func reload(from path: String) async -> Bool {
        let logger = self.state.withLockedValue { $0.logger }
        do {
            let configuration = try ConfigurationLoader.load(path: path)
            // Certificates are loaded and each key checked against its certificate before
            // anything changes: a bad pair keeps the old configuration and certificates.
            let tls = try Self.makeTLSContexts(configuration)
            let newLogger = Logger.gateway(configuration.logging)
            let identity = try IdentityRuntime.build(configuration.jwt) { problem in
                newLogger.warning("JWKS key ignored", metadata: ["reason": "\(problem)"])
            }
            await self.apply(configuration, logger: newLogger, tls: tls, identity: identity)
            newLogger.notice(
                "configuration reloaded",
                metadata: [
                    "file": "\(path)", "upstream": "\(configuration.upstream.url)",
                    "tls_certificates_reloaded": "\(configuration.server.tls != nil)",
                ]
            )
            return true
        } catch let error as TLSSetupError {
            self.state.withLockedValue { $0.reloadFailures += 1 }
            logger.error(
                "reload failed; keeping the previous configuration and certificates",
                metadata: ["file": "\(path)", "problems": "\(error.description)"]
            )
            return false
        } catch {
            self.state.withLockedValue { $0.reloadFailures += 1 }
            logger.error(
                "reload failed; keeping the previous configuration",
                metadata: ["file": "\(path)", "problems": "\(error)"]
            )
            return false
        }
    }

    /// Stops accepting, lets in-flight requests finish within `[server] drain_timeout`,
    /// closes what is left, and stops the event loops.
    package func drain() async {
        let (listeners, configuration, logger) = self.state.withLockedValue {
            ($0.listeners, $0.configuration, $0.logger)
        }
        self.state.withLockedValue {
            $0.listeners = []
            $0.draining = true
        }
        // Stop accepting before closing. A connection NIO has accepted is set up by a task on
        // its own loop and then handed back to the listener's loop, where it is closed if the
        // listener is closed by then: a reset its client cannot tell from a failure. Two round
        // trips through every loop let each accepted connection finish that way while the
        // listener is still open; it is then counted and quiesced below. What waits in the
        // kernel's queue stays there: for a passed socket the service manager (or the next
        // gateway) still holds it; for an own SO_REUSEPORT socket, new connections go to the
        // newest gateway (steering) and net.ipv4.tcp_migrate_req moves any queued ones.
        for listener in listeners {
            try? await listener.setOption(ChannelOptions.autoRead, value: false).get()
        }
        for _ in 0..<2 {
            for context in self.contexts {
                try? await context.eventLoop.submit {}.get()
            }
        }
        for listener in listeners {
            try? await listener.close()
        }
        self.subscriber?.stop()
        self.sentinelWatcher?.stop()
        self.refresher.withLockedValue { $0 }?.stop()
        self.ssoRefresher.withLockedValue { $0 }?.stop()
        logger.notice("draining", metadata: ["open_connections": "\(self.tracker.openConnections)"])
        self.tracker.quiesceAll()
        let tracker = self.tracker
        let timeout = configuration.server.drainTimeout
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await tracker.waitUntilAllClosed()
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                guard !Task.isCancelled else { return }
                logger.warning(
                    "drain timeout reached; closing remaining connections",
                    metadata: ["open_connections": "\(tracker.openConnections)"]
                )
                tracker.closeAll()
            }
            // Either every connection closed, or the timeout closed them; the waiter
            // finishes in both cases.
            _ = await group.next()
            group.cancelAll()
        }
        for context in self.contexts {
            try? await context.eventLoop.submit { context.value.shutdown() }.get()
        }
        if let probe = self.redisProbe {
            try? await probe.eventLoop.submit { probe.value.close() }.get()
        }
        try? await self.passwordPool.shutdownGracefully()
        if self.ownsGroup {
            try? await self.group.shutdownGracefully()
        }
        logger.notice("stopped")
    }
}
