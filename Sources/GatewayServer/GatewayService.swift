import GatewayConfig
import GatewayCore
import GatewayRedis
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// The gateway as a swift-service-lifecycle `Service`: binds, serves, reloads on SIGHUP,
/// and drains on graceful shutdown (SIGTERM/SIGINT, delivered by the `ServiceGroup`).
///
/// Under systemd (`Type=notify`) it reports each step through `SystemdNotifier`:
/// `READY=1` once the listeners are bound (and Redis answered, or its connect timeout
/// passed), `RELOADING=1` … `READY=1` around a SIGHUP reload, `STOPPING=1` when the drain
/// begins, `STATUS=` lines for `systemctl status`, and `WATCHDOG=1` pings throughout.
package struct GatewayService: Service {
    private let server: GatewayServer
    private let configurationPath: String?
    private let onReady: @Sendable (GatewayServer) -> Void
    private let beforeStart: @Sendable () async throws -> Void
    private let notifier: SystemdNotifier

    /// - Parameters:
    ///   - configurationPath: the file SIGHUP re-reads; nil disables reload (demo).
    ///   - notifier: where readiness goes; by default `$NOTIFY_SOCKET` (a no-op without it).
    ///   - onReady: called once the listeners are bound.
    ///   - beforeStart: awaited before the listeners are bound (the admin listener's bind,
    ///     run by its own service); what it throws stops the start.
    package init(
        server: GatewayServer,
        configurationPath: String?,
        notifier: SystemdNotifier? = nil,
        onReady: @escaping @Sendable (GatewayServer) -> Void = { _ in },
        beforeStart: @escaping @Sendable () async throws -> Void = {}
    ) {
        self.server = server
        self.configurationPath = configurationPath
        self.beforeStart = beforeStart
        self.onReady = onReady
        self.notifier = notifier ?? SystemdNotifier(logger: Logger.gateway(server.configuration.logging))
    }

    package func run() async throws {
        // Trap SIGHUP before binding, so a reload sent right after readiness is not lost
        // to the default action (terminate).
        let reloadSignals = await UnixSignalsSequence(trapping: .sighup)
        let server = self.server
        let notifier = self.notifier
        let path = self.configurationPath

        // Start-up: bind, then wait (bounded) for Redis; READY=1 only after both.
        var serving = ""
        try await notifier.withWatchdog {
            let listen = server.configuration.server.listen.map(\.description).joined(separator: ", ")
            if getenv("LISTEN_FDS") != nil {
                notifier.status("starting: taking the sockets passed in LISTEN_FDS")
            } else {
                notifier.status("starting: binding \(listen)")
            }
            do {
                try await self.beforeStart()
                try await server.start()
            } catch {
                notifier.status("failed to start: \(error)")
                throw error
            }
            self.onReady(server)
            serving = "serving on \(Self.describe(server.boundAddresses))"
            var readiness = serving
            if let redis = server.configuration.redis {
                notifier.status(
                    "listening; waiting for \(Self.describe(redis)) (at most \(Self.describe(redis.connectTimeout)))"
                )
                if let answer = await RedisReadinessProbe.answersPing(
                    redis,
                    on: server.group.next(),
                    clock: server.clock
                ) {
                    readiness += "; \(answer) answered PING"
                } else {
                    readiness +=
                        "; \(Self.describe(redis)) did not answer within \(Self.describe(redis.connectTimeout)): "
                        + "only keys seen before work until it does (503 otherwise)"
                }
            }
            notifier.ready(status: readiness)
        }

        // Serving: reload on SIGHUP until graceful shutdown. The watchdog pings only while
        // every event loop still runs tasks.
        let group = server.group
        let servingStatus = serving
        try await notifier.withWatchdog(
            probe: { await Self.probeEventLoops(group) },
            body: {
                await withTaskGroup(of: Void.self) { tasks in
                    tasks.addTask {
                        var reloads = 0
                        for await _ in reloadSignals {
                            guard let path else { continue }
                            notifier.reloading(status: "reloading configuration from \(path)")
                            if await server.reload(from: path) {
                                reloads += 1
                                notifier.ready(
                                    status: "\(servingStatus); configuration reloaded from \(path) (reload \(reloads))"
                                )
                            } else {
                                notifier.ready(
                                    status: "\(servingStatus); reload refused: \(path) is invalid, "
                                        + "still running the previous configuration (problems in the log)"
                                )
                            }
                        }
                    }
                    tasks.addTask {
                        // Returns when the group starts a graceful shutdown (or is cancelled).
                        try? await gracefulShutdown()
                    }
                    _ = await tasks.next()
                    tasks.cancelAll()
                }
            }
        )

        // Shutdown: STOPPING=1 before the listeners close, then drain (watchdog still on,
        // without probing loops that the drain shuts down).
        let drainTimeout = server.configuration.server.drainTimeout
        notifier.stopping(
            status: "stopping: no new connections; draining \(server.openConnections) open connection(s) "
                + "for at most \(Self.describe(drainTimeout))"
        )
        try await notifier.withWatchdog {
            await server.drain()
        }
    }

    /// Returns once every event loop has run a task; never returns while one is wedged.
    static func probeEventLoops(_ group: MultiThreadedEventLoopGroup) async {
        for loop in group.makeIterator() {
            try? await loop.submit {}.get()
        }
    }

    static func describe(_ addresses: [SocketAddress]) -> String {
        let text = addresses.compactMap { address in
            address.ipAddress.map { ListenAddress(host: $0, port: address.port ?? 0).description }
        }
        return text.isEmpty ? "no address" : text.joined(separator: ", ")
    }

    static func describe(_ duration: Duration) -> String {
        ValueParsers.text(of: duration)
    }

    /// Where the configuration says Redis is: the server, or the sentinels or seed nodes
    /// that lead to it (none of which is the node that answers).
    static func describe(_ redis: RedisSettings) -> String {
        if let sentinel = redis.sentinel {
            let nodes = sentinel.nodes.map(\.description).joined(separator: ", ")
            return "the Redis primary \(sentinel.masterName) through the sentinels \(nodes)"
        }
        if let cluster = redis.cluster {
            return "Redis Cluster through the seed nodes \(cluster.nodes.map(\.description).joined(separator: ", "))"
        }
        return "Redis \(redis.endpoint)"
    }
}
