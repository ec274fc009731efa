package import GatewayConfig
package import Logging
import NIOConcurrencyHelpers

/// The process's news about Redis nodes, shared by every connection of every event loop:
/// Sentinel announced a new primary, or one connection recovered after a failure. Each
/// registered client hears it on its own loop and reconnects at once instead of waiting
/// out its back-off. It also keeps what `/readyz` and `/metrics` report (the node in use,
/// failovers and reconnects) and logs why connections are refused (`WRONGPASS ...`, a TLS
/// verification failure), once per distinct reason rather than once per retry.
///
/// Any thread. Its lock is taken on connects, failovers and admin requests, never per command.
package final class RedisNodeEvents: Sendable {
    /// What a registered connection is told.
    package enum Notice: Sendable, Hashable {
        /// Sentinel switched the primary to this node.
        case primarySwitched(RedisSettings.Endpoint)
        /// Some connection reached Redis again: whoever is backing off may retry now.
        case recovered
        /// A cluster client read a slot map naming other primaries than before (a replica
        /// promoted, a node added): the revocation subscription, if it is waiting out its
        /// back-off after losing its node, subscribes again now.
        case clusterPrimariesChanged
    }

    /// The node a connection last reached, for `/readyz`.
    package struct Node: Sendable, Hashable {
        package var endpoint: RedisSettings.Endpoint
        /// From `ROLE` (Sentinel mode), nil when it was not asked.
        package var role: SentinelReply.Role?
    }

    private struct State {
        var listeners: [UInt64: @Sendable (Notice) -> Void] = [:]
        var nextListener: UInt64 = 0
        var node: Node?
        var announcedPrimary: RedisSettings.Endpoint?
        var failovers = 0
        var reconnects = 0
        var lastRefusal: String?
        var clusterNodes: [RedisSettings.Endpoint] = []
        var movedRedirects = 0
        var askRedirects = 0
        var shardedPubSubMissingLogged = false
    }

    private let state = NIOLockedValueBox(State())
    private let logger: Logger?

    package init(logger: Logger?) {
        self.logger = logger
    }

    /// Adds a listener; returns the id `unregister` takes.
    package func register(_ listener: @escaping @Sendable (Notice) -> Void) -> UInt64 {
        self.state.withLockedValue { state in
            state.nextListener += 1
            state.listeners[state.nextListener] = listener
            return state.nextListener
        }
    }

    package func unregister(_ id: UInt64) {
        self.state.withLockedValue { _ = $0.listeners.removeValue(forKey: id) }
    }

    /// A `+switch-master` for `primary` (each sentinel publishes it, so repeats of the same
    /// primary count once). Every listener hears it.
    package func primarySwitched(to primary: RedisSettings.Endpoint) {
        let listeners: [@Sendable (Notice) -> Void]? = self.state.withLockedValue { state in
            guard state.announcedPrimary != primary else { return nil }
            let first = state.announcedPrimary == nil && state.failovers == 0 && state.node?.endpoint == primary
            state.announcedPrimary = primary
            if !first { state.failovers += 1 }
            return Array(state.listeners.values)
        }
        guard let listeners else { return }
        self.logger?.notice("Sentinel switched the Redis primary", metadata: ["redis_node": "\(primary)"])
        for listener in listeners { listener(.primarySwitched(primary)) }
    }

    /// A connection reached `node`. After a failure (`recovered`), the other connections
    /// are told to stop backing off.
    package func connected(to node: Node, recovered: Bool) {
        let listeners: [@Sendable (Notice) -> Void] = self.state.withLockedValue { state in
            state.node = node
            if node.role == .primary, state.announcedPrimary == nil { state.announcedPrimary = node.endpoint }
            guard recovered else { return [] }
            state.reconnects += 1
            return Array(state.listeners.values)
        }
        for listener in listeners { listener(.recovered) }
    }

    /// A connection got its first good reply: a refusal logged earlier is over. (Not on
    /// connect: a TLS 1.3 server refuses a client certificate only after the handshake.)
    package func answered(by endpoint: RedisSettings.Endpoint) {
        let hadRefusal = self.state.withLockedValue { state in
            defer { state.lastRefusal = nil }
            return state.lastRefusal != nil
        }
        if hadRefusal {
            self.logger?.notice(
                "Redis accepts the gateway's connections again",
                metadata: ["redis_node": "\(endpoint)"]
            )
        }
    }

    /// Redis (or a sentinel, or the TLS handshake) refused a connection: logged with the
    /// server's own words when they differ from the last refusal.
    package func refused(_ reason: String) {
        let changed = self.state.withLockedValue { state in
            guard state.lastRefusal != reason else { return false }
            state.lastRefusal = reason
            return true
        }
        if changed {
            self.logger?.error("Redis connection refused: \(reason)")
        }
    }

    /// A cluster client learnt the slot map: these primaries serve it (for `/readyz`). When
    /// they are not the ones known before, every listener hears it.
    package func clusterMapped(_ nodes: [RedisSettings.Endpoint]) {
        let listeners: [@Sendable (Notice) -> Void] = self.state.withLockedValue { state in
            let changed = Set(state.clusterNodes) != Set(nodes)
            state.clusterNodes = nodes
            return changed ? Array(state.listeners.values) : []
        }
        for listener in listeners { listener(.clusterPrimariesChanged) }
    }

    /// A cluster node redirected a command (`MOVED` or `ASK`). Taken on redirects only,
    /// which happen while slots move, not per command.
    package func clusterRedirected(_ kind: ClusterRedirect.Kind) {
        self.state.withLockedValue { state in
            switch kind {
            case .moved: state.movedRedirects += 1
            case .ask: state.askRedirects += 1
            }
        }
    }

    /// A cluster node answered `ERR unknown command` to `SSUBSCRIBE` or `SPUBLISH` (Redis
    /// before 7): revocations go over plain pub/sub there. Logged once per process, not once
    /// per publication or resubscription.
    package func shardedPubSubUnavailable(on node: RedisSettings.Endpoint?) {
        let first = self.state.withLockedValue { state in
            defer { state.shardedPubSubMissingLogged = true }
            return !state.shardedPubSubMissingLogged
        }
        guard first else { return }
        self.logger?.notice(
            """
            Redis Cluster node does not know sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis 7): \
            revocations use plain PUBLISH/SUBSCRIBE there
            """,
            metadata: node.map { ["redis_node": "\($0)"] } ?? [:]
        )
    }

    package var node: Node? { self.state.withLockedValue { $0.node } }
    package var clusterNodes: [RedisSettings.Endpoint] { self.state.withLockedValue { $0.clusterNodes } }
    package var movedRedirects: Int { self.state.withLockedValue { $0.movedRedirects } }
    package var askRedirects: Int { self.state.withLockedValue { $0.askRedirects } }
    package var failovers: Int { self.state.withLockedValue { $0.failovers } }
    package var reconnects: Int { self.state.withLockedValue { $0.reconnects } }
}
