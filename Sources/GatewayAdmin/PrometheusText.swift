import GatewayProxy

/// `/metrics` in the Prometheus text exposition format (version 0.0.4): the names, help
/// texts and label sets operators' dashboards rely on. Pure; any thread.
enum PrometheusText {
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

    static func render(_ metrics: AdminMetrics) -> String {
        let merged = metrics.loops
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
        family(
            "dbgw_auth_failures_total",
            "counter",
            "Failed API key authentications charged to their client address's budget."
        )
        out += "dbgw_auth_failures_total \(merged.authFailuresCharged)\n"
        family(
            "dbgw_auth_failures_limited_total",
            "counter",
            "Requests refused (429) without a store lookup: their address spent its failure budget."
        )
        out += "dbgw_auth_failures_limited_total \(merged.authFailureRefusals)\n"
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
            "dbgw_rate_limit_redis_call_decisions",
            "histogram",
            "Rate-limit decisions carried by each Redis script call (one call per destination per event-loop tick)."
        )
        var cumulative = 0
        for (index, bound) in LoopMetrics.CountHistogram.bounds.enumerated() {
            cumulative += merged.rateLimitDecisionsPerRedisCall.buckets[index]
            out += "dbgw_rate_limit_redis_call_decisions_bucket{le=\"\(bound)\"} \(cumulative)\n"
        }
        out +=
            "dbgw_rate_limit_redis_call_decisions_bucket{le=\"+Inf\"} \(merged.rateLimitDecisionsPerRedisCall.count)\n"
        out += "dbgw_rate_limit_redis_call_decisions_sum \(merged.rateLimitDecisionsPerRedisCall.sum)\n"
        out += "dbgw_rate_limit_redis_call_decisions_count \(merged.rateLimitDecisionsPerRedisCall.count)\n"
        family(
            "dbgw_redis_failovers_total",
            "counter",
            "Switches of the Redis primary announced by Sentinel (+switch-master) and followed."
        )
        out += "dbgw_redis_failovers_total \(metrics.redisFailovers)\n"
        family(
            "dbgw_redis_reconnects_total",
            "counter",
            "Redis connections re-established after a lost or refused one."
        )
        out += "dbgw_redis_reconnects_total \(metrics.redisReconnects)\n"
        family(
            "dbgw_redis_cluster_redirects_total",
            "counter",
            "Redis Cluster redirections followed: MOVED (the slot map corrected) and ASK (a slot in migration)."
        )
        out += "dbgw_redis_cluster_redirects_total{kind=\"moved\"} \(metrics.redisMovedRedirects)\n"
        out += "dbgw_redis_cluster_redirects_total{kind=\"ask\"} \(metrics.redisAskRedirects)\n"
        family("dbgw_open_connections", "gauge", "Client connections open now.")
        out += "dbgw_open_connections \(metrics.openConnections)\n"
        family(
            "dbgw_connections_refused_total",
            "counter",
            "Connections closed at once because max_connections was reached."
        )
        out += "dbgw_connections_refused_total \(metrics.refusedConnections)\n"
        family(
            "dbgw_connections_closed_waiting_total",
            "counter",
            "Connections waiting for a request head, closed to admit a new one because max_connections was reached."
        )
        out += "dbgw_connections_closed_waiting_total \(metrics.closedWaitingConnections)\n"
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
        out += "dbgw_config_reloads_total{result=\"applied\"} \(metrics.reloads)\n"
        out += "dbgw_config_reloads_total{result=\"refused\"} \(metrics.reloadFailures)\n"
        return out
    }
}
