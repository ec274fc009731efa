import GatewayConfig
import GatewayCore
import NIOCore

/// The cluster side of one event loop's `RedisClient`: one connection per primary (each a
/// plain `RedisClient` to that node, with its own back-off), the slot map, and every
/// command sent to the node serving its keys' slot.
///
/// The map is read from the seed nodes (`CLUSTER SHARDS`, else `CLUSTER SLOTS`) before the
/// first command, corrected at once by each `MOVED` and read again soon after (at most every
/// `refreshInterval`), and read again when a node cannot be reached (its replica may have
/// taken over). `ASK` sends `ASKING` and the command to the node named, on the same
/// connection back to back. Redirects are bounded by `ClusterRedirectStateMachine`.
/// Touched only on its event loop.
final class ClusterRouter {
    let eventLoop: any EventLoop
    private let settings: RedisSettings
    private let seeds: [RedisSettings.Endpoint]
    private let connector: RedisConnector
    private let clock: GatewayClock
    private let events: RedisNodeEvents?
    private(set) var map: ClusterSlotMap?
    private var refreshing: EventLoopFuture<Void>?
    private var lastRefresh: NIODeadline?
    private var nodes: [RedisSettings.Endpoint: RedisClient] = [:]
    private var closed = false

    private static let refreshInterval = TimeAmount.milliseconds(200)
    private static let tryAgainPause = TimeAmount.milliseconds(20)

    init(
        eventLoop: any EventLoop,
        settings: RedisSettings,
        cluster: RedisSettings.Cluster,
        connector: @escaping RedisConnector,
        clock: GatewayClock,
        events: RedisNodeEvents?
    ) {
        self.eventLoop = eventLoop
        self.settings = settings
        self.seeds = cluster.nodes
        self.connector = connector
        self.clock = clock
        self.events = events
    }

    var isConnected: Bool { self.nodes.values.contains { $0.isConnected } }

    /// The nodes this loop holds a connection object for.
    var connectedNodes: [RedisSettings.Endpoint] { self.nodes.filter { $0.value.isConnected }.map(\.key) }

    var commandsSent: Int { self.nodes.values.reduce(0) { $0 + $1.commandsSent } }

    func send(_ arguments: [[UInt8]], route: ClusterCommandKeys.Route) -> EventLoopFuture<RESPValue> {
        if case .crossSlot = route {
            let name = String(decoding: arguments.first ?? [], as: UTF8.self).prefix(16)
            return self.eventLoop.makeFailedFuture(
                RedisClientError.server("CROSSSLOT \(name): keys in different slots, refused by the gateway")
            )
        }
        guard !self.closed else { return self.eventLoop.makeFailedFuture(RedisClientError.unavailable) }
        guard self.map != nil else {
            return self.refresh().assumeIsolated().flatMap {
                self.dispatch(arguments, route: route, machine: ClusterRedirectStateMachine(), askNode: nil)
            }.nonisolated()
        }
        return self.dispatch(arguments, route: route, machine: ClusterRedirectStateMachine(), askNode: nil)
    }

    func close() {
        self.closed = true
        for client in self.nodes.values { client.close() }
        self.nodes.removeAll()
    }

    private func dispatch(
        _ arguments: [[UInt8]],
        route: ClusterCommandKeys.Route,
        machine: ClusterRedirectStateMachine,
        askNode: RedisSettings.Endpoint?
    ) -> EventLoopFuture<RESPValue> {
        let node: RedisSettings.Endpoint
        if let askNode {
            node = askNode
        } else if case .slot(let slot) = route, let owner = self.map?.node(forSlot: slot) {
            node = owner
        } else {
            node = self.map?.nodes.first ?? self.seeds[0]
        }
        guard let client = self.client(for: node) else {
            return self.eventLoop.makeFailedFuture(RedisClientError.unavailable)
        }
        if askNode != nil {
            // Written right before the command on the same connection; its own reply
            // (`+OK`) needs no handling, and a failure fails the command too.
            client.send([Array("ASKING".utf8)]).whenFailure { _ in }
        }
        return client.send(arguments).assumeIsolated().flatMapError { error -> EventLoopFuture<RESPValue> in
            var machine = machine
            guard case RedisClientError.server(let message) = error else {
                // The node is gone or silent: its replica may have been promoted. A command
                // that was never sent goes to the new owner once the map says so.
                guard case RedisClientError.unavailable = error, askNode == nil, case .slot(let slot) = route,
                    machine.nodeUnreachable()
                else {
                    self.refreshSoon()
                    return self.eventLoop.makeFailedFuture(error)
                }
                return self.refreshUnlessRecent().assumeIsolated().flatMap { () -> EventLoopFuture<RESPValue> in
                    guard let owner = self.map?.node(forSlot: slot), owner != node else {
                        return self.eventLoop.makeFailedFuture(error)
                    }
                    return self.dispatch(arguments, route: route, machine: machine, askNode: nil)
                }.nonisolated()
            }
            switch machine.failed(withMessage: message) {
            case .deliver, .giveUp:
                return self.eventLoop.makeFailedFuture(error)
            case .moved(let slot, let target):
                self.events?.clusterRedirected(.moved)
                self.map?.assign(slot: slot, to: target)
                self.refreshSoon()
                return self.dispatch(arguments, route: route, machine: machine, askNode: nil)
            case .ask(let target):
                self.events?.clusterRedirected(.ask)
                return self.dispatch(arguments, route: route, machine: machine, askNode: target)
            case .tryAgain:
                return self.eventLoop.assumeIsolated().scheduleTask(in: Self.tryAgainPause) {}.futureResult
                    .assumeIsolated().flatMap { self.dispatch(arguments, route: route, machine: machine, askNode: nil) }
                    .nonisolated()
            }
        }.nonisolated()
    }

    /// The connection to `node`, made on first use. Nil once closed.
    private func client(for node: RedisSettings.Endpoint) -> RedisClient? {
        if let client = self.nodes[node] { return client }
        guard !self.closed else { return nil }
        var nodeSettings = self.settings
        nodeSettings.cluster = nil
        nodeSettings.sentinel = nil
        nodeSettings.endpoint = node
        let client = RedisClient(
            eventLoop: self.eventLoop,
            settings: nodeSettings,
            connector: self.connector,
            clock: self.clock,
            events: self.events
        )
        self.nodes[node] = client
        return client
    }

    /// Reads the map again unless that was done within `refreshInterval`.
    private func refreshSoon() {
        self.refreshUnlessRecent().whenFailure { _ in }
    }

    /// The reading in progress, a new one, or (read within `refreshInterval`) the map as is.
    private func refreshUnlessRecent() -> EventLoopFuture<Void> {
        if let refreshing = self.refreshing { return refreshing }
        if let last = self.lastRefresh, self.clock.now() < last + Self.refreshInterval {
            return self.eventLoop.makeSucceededFuture(())
        }
        return self.refresh()
    }

    /// Reads the map from the known primaries, then the seeds, the first that answers; one
    /// reading at a time.
    private func refresh() -> EventLoopFuture<Void> {
        if let refreshing = self.refreshing { return refreshing }
        self.lastRefresh = self.clock.now()
        var candidates = self.map?.nodes ?? []
        for seed in self.seeds where !candidates.contains(seed) { candidates.append(seed) }
        let future = self.readMap(from: candidates[...]).assumeIsolated().map { map -> Void in
            self.map = map
            self.events?.clusterMapped(map.nodes)
        }.nonisolated()
        self.refreshing = future
        future.assumeIsolated().whenComplete { _ in
            self.refreshing = nil
            self.lastRefresh = self.clock.now()
        }
        return future
    }

    private func readMap(from candidates: ArraySlice<RedisSettings.Endpoint>) -> EventLoopFuture<ClusterSlotMap> {
        guard let node = candidates.first, let client = self.client(for: node) else {
            return self.eventLoop.makeFailedFuture(RedisClientError.unavailable)
        }
        let useTLSPort = self.settings.tls != nil
        return client.send(["CLUSTER", "SHARDS"]).assumeIsolated().flatMapThrowing { reply in
            try ClusterSlotMap.fromShards(reply, useTLSPort: useTLSPort, answeredBy: node)
        }.flatMapError { error -> EventLoopFuture<ClusterSlotMap> in
            guard case RedisClientError.server = error else { return self.eventLoop.makeFailedFuture(error) }
            // Before Redis 7 there is no CLUSTER SHARDS.
            return client.send(["CLUSTER", "SLOTS"]).flatMapThrowing {
                try ClusterSlotMap.fromSlots($0, answeredBy: node)
            }
        }.flatMapThrowing { map -> ClusterSlotMap in
            guard map.coveredSlots > 0 else { throw RedisClientError.unavailable }
            return map
        }.flatMapError { _ in
            self.readMap(from: candidates.dropFirst())
        }.nonisolated()
    }
}
