package import GatewayProxy

/// What `/metrics` reports: every loop's counters merged, and the process-wide ones the
/// server keeps. A value gathered by the server when scraped; any thread.
package struct AdminMetrics: Sendable {
    /// The event loops' snapshots, merged.
    package var loops: LoopMetrics.Snapshot
    package var openConnections: Int
    /// Connections closed at once because `max_connections` was reached.
    package var refusedConnections: Int
    /// Connections waiting for a request head, closed to admit a new one at `max_connections`.
    package var closedWaitingConnections = 0
    package var reloads: Int
    package var reloadFailures: Int
    /// Switches of the Redis primary followed (Sentinel).
    package var redisFailovers = 0
    /// Redis connections re-established after a lost or refused one.
    package var redisReconnects = 0
    /// Redis Cluster redirections followed.
    package var redisMovedRedirects = 0
    package var redisAskRedirects = 0

    package init(
        loops: LoopMetrics.Snapshot,
        openConnections: Int,
        refusedConnections: Int,
        reloads: Int,
        reloadFailures: Int,
        redisFailovers: Int = 0,
        redisReconnects: Int = 0
    ) {
        self.loops = loops
        self.openConnections = openConnections
        self.refusedConnections = refusedConnections
        self.reloads = reloads
        self.reloadFailures = reloadFailures
        self.redisFailovers = redisFailovers
        self.redisReconnects = redisReconnects
    }
}
