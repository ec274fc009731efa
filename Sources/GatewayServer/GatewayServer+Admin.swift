import GatewayConfig
import GatewayProxy
import GatewayRedis
import NIOCore
import NIOPosix

extension GatewayServer {
    /// `/readyz`: configuration loaded, Redis answering PING (when configured), upstream
    /// accepting TCP connections. Each check is bounded by its own timeout.
    func readiness() async -> (ready: Bool, checks: [(String, String)]) {
        let configuration = self.configuration
        var checks: [(String, String)] = [("config", "ok")]
        var ready = true
        if let probe = self.redisProbe {
            do {
                let reply = try await probe.eventLoop.flatSubmit { probe.value.send(["PING"]) }.get()
                if case .simpleString("PONG") = reply {
                    checks.append(("redis", "ok"))
                    if configuration.redis?.cluster != nil {
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
        let upstream = configuration.upstream
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
        if self.isDraining {
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

    /// A quoted Prometheus label value (backslash, quote and newline escaped).
    static func labelValue(_ value: String) -> String {
        var out = "\""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out + "\""
    }

    /// `/metrics` in the Prometheus text exposition format (version 0.0.4).
    func metricsText() async -> String {
        var merged = LoopMetrics.Snapshot()
        for context in self.loopContexts {
            if let snapshot = try? await context.eventLoop.submit({
                context.value.metrics.snapshot(loop: context.value)
            }).get() {
                merged.merge(snapshot)
            }
        }
        let counters = self.lifecycleCounters
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        func histogram(_ name: String, _ help: String, _ histogram: LoopMetrics.Histogram) {
            family(name, "histogram", help)
            var cumulative = 0
            for (index, bound) in LoopMetrics.Histogram.bounds.enumerated() {
                cumulative += histogram.buckets[index]
                out += "\(name)_bucket{le=\"\(bound)\"} \(cumulative)\n"
            }
            out += "\(name)_bucket{le=\"+Inf\"} \(histogram.count)\n"
            out += "\(name)_sum \(histogram.sumSeconds)\n"
            out += "\(name)_count \(histogram.count)\n"
        }
        family(
            "dbgw_requests_total",
            "counter",
            "Requests by route, outcome (forwarded, rejected, aborted, local), status and credential kind."
        )
        let keys = merged.requests.keys.sorted {
            ($0.route, $0.outcome, $0.status, $0.credential) < ($1.route, $1.outcome, $1.status, $1.credential)
        }
        for key in keys {
            out +=
                "dbgw_requests_total{route=\(Self.labelValue(key.route)),outcome=\"\(key.outcome)\",status=\"\(key.status)\",credential=\"\(key.credential)\"} \(merged.requests[key]!)\n"
        }
        histogram("dbgw_request_duration_seconds", "Time from request head to response end.", merged.total)
        histogram(
            "dbgw_upstream_duration_seconds",
            "Time from the first byte sent upstream to the response end.",
            merged.upstream
        )
        histogram("dbgw_auth_duration_seconds", "Time from request head to the authorization decision.", merged.auth)
        family("dbgw_credential_cache_hits_total", "counter", "Credential lookups answered by an event loop's cache.")
        out += "dbgw_credential_cache_hits_total \(merged.cacheHits)\n"
        family("dbgw_credential_cache_misses_total", "counter", "Credential lookups that asked the store.")
        out += "dbgw_credential_cache_misses_total \(merged.cacheMisses)\n"
        family("dbgw_jwt_cache_hits_total", "counter", "JWTs answered by an event loop's verified-token cache.")
        out += "dbgw_jwt_cache_hits_total \(merged.jwtCacheHits)\n"
        family("dbgw_jwt_cache_misses_total", "counter", "JWTs whose signature and claims were checked.")
        out += "dbgw_jwt_cache_misses_total \(merged.jwtCacheMisses)\n"
        family(
            "dbgw_opaque_token_cache_hits_total",
            "counter",
            "Opaque OAuth access tokens answered by an event loop's cache."
        )
        out += "dbgw_opaque_token_cache_hits_total \(merged.opaqueTokenCacheHits)\n"
        family("dbgw_opaque_token_cache_misses_total", "counter", "Opaque OAuth access tokens that asked the store.")
        out += "dbgw_opaque_token_cache_misses_total \(merged.opaqueTokenCacheMisses)\n"
        family(
            "dbgw_introspection_requests_total",
            "counter",
            "Exchanges with introspection endpoints (each may fail)."
        )
        out += "dbgw_introspection_requests_total \(merged.introspectionRequests)\n"
        family(
            "dbgw_introspection_cache_hits_total",
            "counter",
            "Introspected tokens answered by an event loop's cache."
        )
        out += "dbgw_introspection_cache_hits_total \(merged.introspectionCacheHits)\n"
        family("dbgw_rate_limit_decisions_total", "counter", "Token-bucket decisions by where they were made.")
        out += "dbgw_rate_limit_decisions_total{store=\"redis\"} \(merged.rateLimitRedisDecisions)\n"
        out += "dbgw_rate_limit_decisions_total{store=\"local\"} \(merged.rateLimitLocalDecisions)\n"
        out += "dbgw_rate_limit_decisions_total{store=\"local_fallback\"} \(merged.rateLimitFallbackDecisions)\n"
        family(
            "dbgw_rate_limit_store_unavailable_total",
            "counter",
            "Decisions refused (503) because Redis could not answer and the policy says deny."
        )
        out += "dbgw_rate_limit_store_unavailable_total \(merged.rateLimitDeniedUnavailable)\n"
        family(
            "dbgw_redis_failovers_total",
            "counter",
            "Switches of the Redis primary announced by Sentinel (+switch-master) and followed."
        )
        out += "dbgw_redis_failovers_total \(self.redisEvents?.failovers ?? 0)\n"
        family(
            "dbgw_redis_reconnects_total",
            "counter",
            "Redis connections re-established after a lost or refused one."
        )
        out += "dbgw_redis_reconnects_total \(self.redisEvents?.reconnects ?? 0)\n"
        family(
            "dbgw_redis_cluster_redirects_total",
            "counter",
            "Redis Cluster redirections followed: MOVED (the slot map corrected) and ASK (a slot in migration)."
        )
        out += "dbgw_redis_cluster_redirects_total{kind=\"moved\"} \(self.redisEvents?.movedRedirects ?? 0)\n"
        out += "dbgw_redis_cluster_redirects_total{kind=\"ask\"} \(self.redisEvents?.askRedirects ?? 0)\n"
        family("dbgw_open_connections", "gauge", "Client connections open now.")
        out += "dbgw_open_connections \(self.openConnections)\n"
        family(
            "dbgw_connections_refused_total",
            "counter",
            "Connections closed at once because max_connections was reached."
        )
        out += "dbgw_connections_refused_total \(counters.refused)\n"
        family("dbgw_upstream_connections", "gauge", "Upstream keep-alive connections, by state.")
        out += "dbgw_upstream_connections{state=\"open\"} \(merged.upstreamConnectionsOpen)\n"
        out += "dbgw_upstream_connections{state=\"idle\"} \(merged.upstreamConnectionsIdle)\n"
        family(
            "dbgw_upstream_connect_failures_total",
            "counter",
            "Requests answered 502 because no upstream connection could be made."
        )
        out += "dbgw_upstream_connect_failures_total \(merged.upstreamConnectFailures)\n"
        family("dbgw_config_reloads_total", "counter", "SIGHUP reloads, by result.")
        out += "dbgw_config_reloads_total{result=\"applied\"} \(counters.reloads)\n"
        out += "dbgw_config_reloads_total{result=\"refused\"} \(counters.reloadFailures)\n"
        return out
    }
}
