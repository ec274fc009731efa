import GatewayAuth
import GatewayCore

/// The decisions before authentication that the request path and `explain` share: how
/// the path is normalised (or why it is refused) and which rule the request falls under
/// (a built-in endpoint or a configured route, with its required scopes and rate-limit
/// policy). Pure; any thread.
enum RequestDecision {
    /// What a request's route says.
    struct Route {
        var requirement: RouteRequirement
        var label: String
        /// The route's `[[rate_limits]]` policy (built-in endpoints have none here).
        var rateLimit: String?

        /// Explain's `route` step: what the requirement asks of the credential.
        func describe(method: String, normalizedPath: String, into trace: DecisionTrace) {
            switch self.requirement {
            case .denied:
                trace.fail("route", "no route matches \(method) \(normalizedPath): default-deny")
            case .open:
                trace.pass("route", "open route: no credential needed")
            case .scopes(let scopes):
                trace.pass(
                    "route",
                    scopes.isEmpty
                        ? "a credential is required (no scope)" : "requires scopes: \(scopes.joined(separator: " "))"
                )
            }
        }
    }

    /// The normalised path, or the 400 the gateway answers for an ambiguous one.
    static func normalize(_ rawPath: String) -> Result<String, GatewayError> {
        switch PathNormalizer.normalize(rawPath) {
        case .success(let path):
            return .success(path)
        case .failure(.ambiguous(let reason)):
            return .failure(.badRequest("The request path is ambiguous: \(reason)."))
        }
    }

    /// The built-in endpoint's rule, else the first route that matches (default-deny
    /// when none does).
    static func route(method: String, normalizedPath: String, builtIn: BuiltInEndpoint?, routes: RouteTable) -> Route {
        if let builtIn {
            return Route(requirement: builtIn.requirement, label: builtIn.routeLabel, rateLimit: nil)
        }
        let match = routes.match(method: method, normalizedPath: normalizedPath)
        return Route(requirement: match.requirement, label: match.label, rateLimit: match.rateLimit)
    }
}
