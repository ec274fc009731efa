package import GatewayAuth
package import GatewayConfig

/// `[[routes]]` compiled for matching: method plus normalized path → what the request
/// needs. The first matching route wins (file order). Immutable; any thread.
package struct RouteTable: Sendable {
    private struct CompiledRoute: Sendable {
        /// `METHOD pattern`, the route's name in metrics.
        let label: String
        let method: String?
        let segments: [Substring]
        let trailingWildcard: Bool
        let requirement: RouteRequirement
        let rateLimit: String?
    }

    private let routes: [CompiledRoute]
    private let unmatched: ServerSettings.UnmatchedRoutePolicy

    package init(routes: [RouteSettings], unmatched: ServerSettings.UnmatchedRoutePolicy) {
        self.routes = routes.map { route in
            var segments = route.path.split(separator: "/", omittingEmptySubsequences: true)
            let trailing = segments.last == "**"
            if trailing { segments.removeLast() }
            return CompiledRoute(
                label: "\(route.method ?? "*") \(route.path)",
                method: route.method,
                segments: segments,
                trailingWildcard: trailing,
                requirement: route.isPublic ? .open : .scopes(route.scopes),
                rateLimit: route.rateLimit
            )
        }
        self.unmatched = unmatched
    }

    /// What `method` on `normalizedPath` (from `PathNormalizer`) needs.
    package func requirement(method: String, normalizedPath: String) -> RouteRequirement {
        self.match(method: method, normalizedPath: normalizedPath).requirement
    }

    /// The requirement and the name of the route that decided it (`METHOD pattern`, or
    /// `unmatched`): a bounded label for metrics.
    package func match(
        method: String,
        normalizedPath: String
    ) -> (requirement: RouteRequirement, label: String, rateLimit: String?) {
        let segments = normalizedPath.split(separator: "/", omittingEmptySubsequences: true)
        for route in self.routes {
            if let routeMethod = route.method, routeMethod != method,
                !(routeMethod == "GET" && method == "HEAD")
            {
                continue
            }
            if Self.matches(route, segments) {
                return (route.requirement, route.label, route.rateLimit)
            }
        }
        switch self.unmatched {
        case .deny: return (.denied, "unmatched", nil)
        case .authenticate: return (.scopes([]), "unmatched", nil)
        }
    }

    private static func matches(_ route: CompiledRoute, _ segments: [Substring]) -> Bool {
        if route.trailingWildcard {
            guard segments.count >= route.segments.count else { return false }
        } else {
            guard segments.count == route.segments.count else { return false }
        }
        for (pattern, segment) in zip(route.segments, segments) where pattern != "*" && pattern != segment {
            return false
        }
        return true
    }
}
