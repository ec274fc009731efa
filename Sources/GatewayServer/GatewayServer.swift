import Foundation
package import GatewayAuth
package import GatewayConfig
package import GatewayCore
import GatewayCrypto
import GatewayPages
package import GatewayProxy
import GatewayRateLimit
import GatewayRedis
import GatewayStore
import GatewayTLS
package import Logging
import NIOConcurrencyHelpers
package import NIOCore
package import NIOPosix
package import ServiceLifecycle

/// The running gateway: event loops, one `LoopAssembly` (and so one proxy `LoopContext`)
/// per loop, the listeners, and the operations that change them as a whole (start, reload,
/// drain). Its background work (the revocation subscriber, the JWKS refreshers) runs as
/// `backgroundServices` in the same `ServiceGroup` as the gateway.
///
/// Methods are called from the lifecycle task (start-up, the SIGHUP loop, shutdown),
/// never from an event loop; each change reaches a loop as a task run on that loop.
package final class GatewayServer: Sendable {
    package let group: MultiThreadedEventLoopGroup
    private let ownsGroup: Bool
    private let assemblies: [NIOLoopBound<LoopAssembly>]
    private let contexts: [NIOLoopBound<LoopContext>]
    private let tracker: ConnectionTracker
    private let state: NIOLockedValueBox<State>
    private let shared: SharedLoopServices
    private let fanOut: LoopFanOut
    private let subscriber: RevocationSubscriber?
    private let memory: InMemoryData?
    /// The one clock of the process: every loop, store and limiter reads this one.
    package let clock: GatewayClock
    /// Follows the sentinels' `+switch-master` (nil unless `[redis] sentinels`).
    private let sentinelWatcher: SentinelWatcher?
    /// What every Redis connection of the process hears and reports (nil without `[redis]`).
    let redisEvents: RedisNodeEvents?
    /// A Redis connection of its own for `/readyz` probes (nil without `[redis]`).
    let redisProbe: NIOLoopBound<RedisClient>?
    /// Client TLS contexts of identity providers, shared by JWKS fetches and introspection.
    private let httpTLS: HTTPFetchers.TLSContexts

    private struct State {
        /// The application in force (each loop holds the same configuration and TLS contexts).
        var application: GatewayApplication
        var logger: Logger
        var listeners: [any Channel] = []
        var reloads = 0
        var reloadFailures = 0
        var draining = false
    }

    var loopContexts: [NIOLoopBound<LoopContext>] { self.contexts }
    var loopAssemblies: [NIOLoopBound<LoopAssembly>] { self.assemblies }
    var isDraining: Bool { self.state.withLockedValue { $0.draining } }
    var lifecycleCounters: (reloads: Int, reloadFailures: Int, refused: Int) {
        let (reloads, failures) = self.state.withLockedValue { ($0.reloads, $0.reloadFailures) }
        return (reloads, failures, self.tracker.refusedConnections)
    }
    var closedWaitingConnections: Int { self.tracker.evictedConnections }

    /// How many event loops `server` asks for (`event_loops = 0`: one per core).
    package static func eventLoopCount(_ server: ServerSettings) -> Int {
        server.eventLoops == 0 ? System.coreCount : server.eventLoops
    }

    /// What runs beside the gateway in its `ServiceGroup`: the revocation subscriber (with
    /// `[redis]`) and the JWKS refreshers of `[auth.jwt]` and `[[sso.providers]]`. Put them
    /// after the gateway's own service: the group stops them first, before the drain.
    package var backgroundServices: [any Service] {
        var services: [any Service] = [self.shared.jwtRefresher, self.shared.ssoRefresher]
        if let subscriber = self.subscriber { services.insert(subscriber, at: 0) }
        if let watcher = self.sentinelWatcher { services.insert(watcher, at: 0) }
        return services
    }

    /// Creates the event loops and per-loop assemblies of `application`; nothing is bound
    /// until `start()`, and nothing runs in the background until `backgroundServices` do.
    package init(
        application: GatewayApplication,
        logger: Logger,
        group: MultiThreadedEventLoopGroup? = nil,
        connector: UpstreamConnector? = nil,
        fetcher: HTTPFetcher? = nil,
        clock: GatewayClock = .system
    ) async throws {
        self.clock = clock
        let configuration = application.configuration
        for warning in application.warnings {
            logger.warning("JWKS key ignored", metadata: ["reason": "\(warning)"])
        }
        self.group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: Self.eventLoopCount(configuration.server))
        self.ownsGroup = group == nil
        let httpTLS = HTTPFetchers.TLSContexts()
        self.httpTLS = httpTLS
        Self.prepareIntrospectionTLS(configuration, contexts: httpTLS, logger: logger)
        Self.prepareSSOTLS(configuration, contexts: httpTLS, logger: logger)
        let fetcher = fetcher ?? HTTPFetchers.posix(group: self.group, tlsContexts: httpTLS)
        let passwordPool = NIOThreadPool(numberOfThreads: max(1, min(System.coreCount, 4)))
        passwordPool.start()
        let shared = SharedLoopServices(
            connector: connector ?? UpstreamConnectors.tcp,
            hmac: HMACSHA256(key: configuration.apiKeys.pepper.map { Array($0.value.utf8) } ?? SecureRandom.bytes(32)),
            localLimiter: LocalRateLimiter(group: self.group, clock: clock),
            passwordPool: passwordPool,
            fetcher: fetcher,
            poster: HTTPFetchers.poster(tlsContexts: httpTLS),
            jwtRefresher: JWKSRefresherService(eventLoop: self.group.next(), fetcher: fetcher, clock: clock),
            ssoRefresher: JWKSRefresherService(eventLoop: self.group.next(), fetcher: fetcher, clock: clock),
            clock: clock
        )
        self.shared = shared
        let backend: LoopStores.Backend =
            configuration.redis.map { .redis($0) }
            ?? .memory(InMemoryData(oauth: configuration.oauth != nil, clock: clock))
        if case .memory(let data) = backend { self.memory = data } else { self.memory = nil }
        let memory = self.memory
        var assemblies: [NIOLoopBound<LoopAssembly>] = []
        var contexts: [NIOLoopBound<LoopContext>] = []
        var members: [NIOLoopBound<LoopFanOut.Member>] = []
        let redisEvents = configuration.redis.map { _ in RedisNodeEvents(logger: logger) }
        self.redisEvents = redisEvents
        for loop in self.group.makeIterator() {
            // Built on the loop, before it serves anything, and only touched there after.
            let (assembly, context, member) = try await loop.submit {
                let stores = LoopStores.make(backend, on: loop, clock: clock, events: redisEvents)
                let assembly = LoopAssembly(
                    eventLoop: loop,
                    application: application,
                    logger: logger,
                    stores: stores,
                    rateLimiter: RateLimiter(
                        eventLoop: loop,
                        local: shared.localLimiter,
                        redis: stores.rateLimits,
                        logger: logger
                    ),
                    shared: shared
                )
                return (
                    NIOLoopBound(assembly, eventLoop: loop),
                    NIOLoopBound(assembly.context, eventLoop: loop),
                    NIOLoopBound(LoopFanOut.Member(assembly: assembly), eventLoop: loop)
                )
            }.get()
            assemblies.append(assembly)
            contexts.append(context)
            members.append(member)
        }
        self.assemblies = assemblies
        self.contexts = contexts
        let fanOut = LoopFanOut(loops: members, eventLoop: self.group.next())
        self.fanOut = fanOut
        // Revocations reach every loop's cache: from the process's own data without Redis,
        // from the revocation channel with it.
        memory?.credentials.subscribe { fanOut.invalidate(apiKeyHash: $0) }
        memory?.sessions.subscribe { fanOut.revoke($0) }
        if let redis = configuration.redis {
            let loop = self.group.next()
            self.subscriber = RevocationSubscriber(
                eventLoop: loop,
                settings: redis,
                connector: RedisConnectors.posix,
                events: redisEvents,
                logger: logger,
                onRevoke: { fanOut.invalidate(apiKeyHash: $0) },
                onRevokeTokenID: { fanOut.revoke(tokenID: $0, expiresAt: $1) },
                onRevokeOpaqueToken: { fanOut.invalidate(opaqueAccessTokenHash: $0) },
                onRevokeSessions: { fanOut.revoke($0) },
                onResubscribed: { fanOut.forgetAll(primarySwitched: redis.sentinel != nil) }
            )
            self.sentinelWatcher = SentinelWatcher(
                eventLoop: loop,
                settings: redis,
                connector: RedisConnectors.posix,
                events: redisEvents!,
                logger: logger
            )
            self.redisProbe = try await loop.submit {
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
            }.get()
        } else {
            self.subscriber = nil
            self.sentinelWatcher = nil
            self.redisProbe = nil
        }
        self.tracker = ConnectionTracker(limit: configuration.server.maxConnections, clock: clock)
        self.state = NIOLockedValueBox(State(application: application, logger: logger))
        await shared.jwtRefresher.update(Self.jwtRefresherSettings(application, fanOut: fanOut, logger: logger))
        await shared.ssoRefresher.update(Self.ssoRefresherSettings(configuration, fanOut: fanOut, logger: logger))
    }

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

    /// The JWT refresher's work for `application`: its remote issuers, keys installed in
    /// every loop's verifier (nil: none).
    private static func jwtRefresherSettings(
        _ application: GatewayApplication,
        fanOut: LoopFanOut,
        logger: Logger
    ) -> JWKSRefresherService.Settings? {
        guard let runtime = application.identity, !runtime.remoteIssuers.isEmpty else { return nil }
        return JWKSRefresherService.Settings(issuers: runtime.remoteIssuers, logger: logger) { issuer, keys in
            fanOut.installJWTKeys(issuer: issuer, keys: keys)
        }
    }

    /// The SSO refresher's work for `configuration`: the providers' key sources, keys
    /// installed in every loop's key ring (nil: no providers).
    private static func ssoRefresherSettings(
        _ configuration: GatewayConfiguration,
        fanOut: LoopFanOut,
        logger: Logger
    ) -> JWKSRefresherService.Settings? {
        let issuers = GatewayApplication.ssoKeySources(configuration)
        guard !issuers.isEmpty else { return nil }
        return JWKSRefresherService.Settings(issuers: issuers, logger: logger) { issuer, keys in
            fanOut.installSSOKeys(issuer: issuer, keys: keys)
        }
    }

    /// How many JWKS fetches of `issuer` started (tests).
    package func jwksFetchCount(issuer: String) async throws -> Int {
        try await self.shared.jwtRefresher.fetchCount(issuer: issuer)
    }

    package var configuration: GatewayConfiguration { self.state.withLockedValue { $0.application.configuration } }
    package var openConnections: Int { self.tracker.openConnections }

    /// The addresses actually bound (ports resolved when the config said 0).
    package var boundAddresses: [SocketAddress] {
        self.state.withLockedValue { $0.listeners.compactMap(\.localAddress) }
    }

    /// Opens the listeners: the sockets a service manager passed (`LISTEN_FDS`, checked
    /// against an explicit `[server] listen`), else every `listen` address bound with
    /// `SO_REUSEPORT`. Throws (keeping nothing open) if any fails.
    package func start() async throws {
        let (configuration, logger) = self.state.withLockedValue { ($0.application.configuration, $0.logger) }
        let plan: [(label: String, socket: ListenSocket)]
        do {
            plan = try Self.listenPlan(configuration.server, logger: logger)
        } catch {
            logger.critical("cannot use the sockets passed by the service manager", metadata: ["problem": "\(error)"])
            throw error
        }
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
            // A smaller first read buffer than NIO's: it stays allocated while the connection idles.
            .childChannelOption(.recvAllocator, value: ClientReadBuffer.allocator)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let context = contexts[ObjectIdentifier(channel.eventLoop)] else {
                        throw ChannelError.ioOnClosedChannel
                    }
                    let loop = context.value
                    var closedWaiting = false
                    // A failed initializer makes NIO close the accepted socket.
                    let admitted = tracker.admit(channel) {
                        closedWaiting = loop.waitingConnections.closeOldest()
                        return closedWaiting
                    }
                    guard admitted else {
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
                    if closedWaiting, tracker.shouldLogRefusal() {
                        logger.notice(
                            "connection waiting for a request closed: max_connections reached",
                            metadata: [
                                "open": "\(tracker.openConnections)",
                                "closed_total": "\(tracker.evictedConnections)",
                            ]
                        )
                    }
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
        guard let assembly = self.assemblies.first else { throw ConnectionRefused() }
        let now = self.clock.unixSeconds()
        return try await assembly.eventLoop.flatSubmit {
            let loop = assembly.value
            let service = APIKeyService(store: loop.stores.credentials, hash: loop.authenticator.hash(apiKey:))
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
        guard let data = self.memory?.sessions else { throw ConnectionRefused() }
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

    /// Puts `next` in force on every loop. Listener addresses, event-loop count, `[redis]`,
    /// `[admin]` and the pepper cannot change without a restart; such changes are logged
    /// and ignored (see `GatewayApplication.changes(to:)`).
    package func apply(_ next: GatewayApplication, logger newLogger: Logger) async {
        let current = self.state.withLockedValue { $0.application }
        let change = current.changes(to: next)
        for setting in change.needsRestart {
            newLogger.warning("reload: \(setting); restart the gateway to apply it")
        }
        let effective = change.application
        self.tracker.updateLimit(effective.configuration.server.maxConnections)
        Self.prepareIntrospectionTLS(effective.configuration, contexts: self.httpTLS, logger: newLogger)
        if change.ssoKeySourcesChanged {
            // Providers added, removed or pointed elsewhere: a refresher for the new set.
            Self.prepareSSOTLS(effective.configuration, contexts: self.httpTLS, logger: newLogger)
            await self.shared.ssoRefresher.update(
                Self.ssoRefresherSettings(effective.configuration, fanOut: self.fanOut, logger: newLogger)
            )
        }
        var futures: [EventLoopFuture<Void>] = []
        for assembly in self.assemblies {
            futures.append(assembly.eventLoop.submit { assembly.value.apply(change, logger: newLogger) })
        }
        for future in futures { try? await future.get() }
        switch change.identity {
        case .unchanged:
            break
        case .replaced, .removed:
            // The loops verify with the new runtime now: a refresher for its issuers, whose
            // keys land on the new verifiers (never on the ones just replaced).
            await self.shared.jwtRefresher.update(
                Self.jwtRefresherSettings(effective, fanOut: self.fanOut, logger: newLogger)
            )
        }
        self.state.withLockedValue {
            $0.application = effective
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
            let application = try GatewayApplication.build(from: configuration)
            let newLogger = Logger.gateway(configuration.logging)
            for warning in application.warnings {
                newLogger.warning("JWKS key ignored", metadata: ["reason": "\(warning)"])
            }
            await self.apply(application, logger: newLogger)
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
            ($0.listeners, $0.application.configuration, $0.logger)
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
        try? await self.shared.passwordPool.shutdownGracefully()
        if self.ownsGroup {
            try? await self.group.shutdownGracefully()
        }
        logger.notice("stopped")
    }
}
