package import GatewayConfig
package import GatewayRedis
package import NIOCore
import NIOPosix

/// `/readyz`: configuration loaded, Redis answering PING (when configured), upstream
/// accepting TCP connections, the gateway not draining. Each check is bounded by its own
/// timeout. A value built by the server per probe; `run` awaits futures on the probe's
/// loop and the group, from any task.
package struct ReadinessCheck: Sendable {
    /// The Redis connection kept for these probes (nil without `[redis]`).
    package var redis: NIOLoopBound<RedisClient>?
    package var upstream: UpstreamSettings
    package var group: any EventLoopGroup
    package var draining: Bool
    /// The process's Redis node news: on a cluster, the primaries of the slot map.
    package var redisEvents: RedisNodeEvents?
    /// `[redis] cluster_nodes` is set.
    package var cluster: Bool

    package init(
        redis: NIOLoopBound<RedisClient>?,
        upstream: UpstreamSettings,
        group: any EventLoopGroup,
        draining: Bool,
        redisEvents: RedisNodeEvents? = nil,
        cluster: Bool = false
    ) {
        self.redis = redis
        self.upstream = upstream
        self.group = group
        self.draining = draining
        self.redisEvents = redisEvents
        self.cluster = cluster
    }

    package func run() async -> (ready: Bool, checks: [(String, String)]) {
        var checks: [(String, String)] = [("config", "ok")]
        var ready = true
        if let probe = self.redis {
            do {
                let reply = try await probe.eventLoop.flatSubmit { probe.value.send(["PING"]) }.get()
                if case .simpleString("PONG") = reply {
                    checks.append(("redis", "ok"))
                    if self.cluster {
                        // The primaries serving the slot map the gateway routes by.
                        let nodes = self.redisEvents?.clusterNodes.map(\.description) ?? []
                        checks.append(("redis_cluster_nodes", nodes.isEmpty ? "unknown" : nodes.joined(separator: ",")))
                    } else {
                        checks += await Self.redisNodeChecks(probe)
                    }
                } else {
                    ready = false
                    checks.append(("redis", "unexpected reply to PING"))
                }
            } catch {
                ready = false
                checks.append(("redis", "unreachable"))
            }
        }
        let upstream = self.upstream
        do {
            let channel = try await ClientBootstrap(group: self.group)
                .connectTimeout(.milliseconds(min(1000, upstream.connectTimeout.timeAmount.nanoseconds / 1_000_000)))
                .connect(host: upstream.host, port: upstream.port)
                .get()
            try? await channel.close()
            checks.append(("upstream", "ok"))
        } catch {
            ready = false
            checks.append(("upstream", "unreachable"))
        }
        if self.draining {
            ready = false
            checks.append(("lifecycle", "draining"))
        }
        return (ready, checks)
    }

    /// `redis_node` (the address the probe's connection reached: in Sentinel mode the primary
    /// the sentinels named) and `redis_role` (its `ROLE`; "unknown" when the ACL user may not
    /// ask).
    private static func redisNodeChecks(_ probe: NIOLoopBound<RedisClient>) async -> [(String, String)] {
        let answer = try? await probe.eventLoop.flatSubmit {
            () -> EventLoopFuture<(RedisNodeEvents.Node?, RESPValue?)> in
            let client = probe.value
            let node = client.node
            return client.send(["ROLE"]).map { (node, $0) }.recover { _ in (node, nil) }
        }.get()
        let node = answer?.0?.endpoint.description ?? "unknown"
        let role = answer?.1.flatMap(SentinelReply.role).map { $0 == .replica ? "replica" : $0.rawValue } ?? "unknown"
        return [("redis_node", node), ("redis_role", role == "master" ? "primary" : role)]
    }
}
