package import GatewayAdmin
import GatewayProxy

extension GatewayServer {
    /// What the admin listener asks this server: readiness, metrics, explain.
    package var adminSources: AdminServer.Sources {
        AdminServer.Sources(
            readiness: { await self.readiness() },
            metrics: { await self.adminMetrics() },
            explain: { request in
                guard !self.isDraining else { return nil }
                return try? await self.explain(request)
            }
        )
    }

    /// `/readyz` for the configuration in force.
    func readiness() async -> (ready: Bool, checks: [(String, String)]) {
        await ReadinessCheck(
            redis: self.redisProbe,
            upstream: self.configuration.upstream,
            group: self.group,
            draining: self.isDraining,
            redisEvents: self.redisEvents,
            cluster: self.configuration.redis?.cluster != nil
        ).run()
    }

    /// Every loop's metrics merged, with the lifecycle counters, for `/metrics`.
    func adminMetrics() async -> AdminMetrics {
        var merged = LoopMetrics.Snapshot()
        for context in self.loopContexts {
            if let snapshot = try? await context.eventLoop.submit({
                context.value.metrics.snapshot(loop: context.value)
            }).get() {
                merged.merge(snapshot)
            }
        }
        let counters = self.lifecycleCounters
        var metrics = AdminMetrics(
            loops: merged,
            openConnections: self.openConnections,
            refusedConnections: counters.refused,
            reloads: counters.reloads,
            reloadFailures: counters.reloadFailures,
            redisFailovers: self.redisEvents?.failovers ?? 0,
            redisReconnects: self.redisEvents?.reconnects ?? 0
        )
        metrics.closedWaitingConnections = self.closedWaitingConnections
        metrics.redisMovedRedirects = self.redisEvents?.movedRedirects ?? 0
        metrics.redisAskRedirects = self.redisEvents?.askRedirects ?? 0
        return metrics
    }
}
