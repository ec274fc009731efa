import GatewayAuth
import GatewayConfig
import GatewayCore
import Testing

@testable import GatewayProxy

/// Explain's `route` step comes from the proxy, which knows the method and path the route
/// table matched (the authenticator sees only the requirement).
@Suite struct RequestDecisionTests {
    private let routes = RouteTable(
        routes: [
            RouteSettings(method: "GET", path: "/health", scopes: [], isPublic: true),
            RouteSettings(method: "GET", path: "/v1/databases", scopes: ["read:databases"]),
            RouteSettings(method: "GET", path: "/v1/anyone", scopes: []),
        ],
        unmatched: .deny
    )

    private func routeStep(_ method: String, _ path: String) -> DecisionTrace.Step? {
        let trace = DecisionTrace()
        RequestDecision.route(method: method, normalizedPath: path, builtIn: nil, routes: self.routes)
            .describe(method: method, normalizedPath: path, into: trace)
        #expect(trace.steps.count == 1)
        return trace.steps.first { $0.name == "route" }
    }

    @Test func theRouteStepSaysWhatTheRequirementAsks() throws {
        let denied = try #require(self.routeStep("DELETE", "/v1/databases"))
        #expect(denied.detail == "no route matches DELETE /v1/databases: default-deny")
        #expect(denied.result == .fail)
        #expect(try #require(self.routeStep("GET", "/health")).detail == "open route: no credential needed")
        #expect(
            try #require(self.routeStep("GET", "/v1/databases")).detail == "requires scopes: read:databases"
        )
        #expect(try #require(self.routeStep("GET", "/v1/anyone")).detail == "a credential is required (no scope)")
    }
}
