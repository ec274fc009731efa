import GatewayAuth
import GatewayConfig
import Testing

@testable import GatewayProxy

private let apiRoutes: [RouteSettings] = [
    RouteSettings(method: "GET", path: "/health", scopes: ["admin"], isPublic: true),
    RouteSettings(method: "GET", path: "/v1/databases", scopes: ["read:databases"]),
    RouteSettings(method: "POST", path: "/v1/databases", scopes: ["write:databases"]),
    RouteSettings(method: "GET", path: "/v1/databases/*", scopes: ["read:databases", "read:policies"]),
    RouteSettings(method: "DELETE", path: "/v1/databases/*/policies/*", scopes: ["write:policies"]),
    RouteSettings(method: nil, path: "/v1/reports/**", scopes: ["read:reports"]),
    RouteSettings(method: "HEAD", path: "/v1/head-only", scopes: ["read:logs"]),
]

private func table(
    _ routes: [RouteSettings] = apiRoutes,
    unmatched: ServerSettings.UnmatchedRoutePolicy = .deny
) -> RouteTable {
    RouteTable(routes: routes, unmatched: unmatched)
}

@Suite struct RouteTableTests {
    @Test(arguments: [
        ("GET", "/v1/databases", RouteRequirement.scopes(["read:databases"])),
        ("POST", "/v1/databases", .scopes(["write:databases"])),
        ("GET", "/v1/databases/db1", .scopes(["read:databases", "read:policies"])),
        ("GET", "/v1/databases/*", .scopes(["read:databases", "read:policies"])),
        ("DELETE", "/v1/databases/db1/policies/p9", .scopes(["write:policies"])),
        ("GET", "/health", .open),
        ("HEAD", "/health", .open),
    ])
    func matches(method: String, path: String, expected: RouteRequirement) {
        #expect(table().requirement(method: method, normalizedPath: path) == expected)
    }

    @Test(arguments: [
        ("PUT", "/v1/databases"),
        ("DELETE", "/v1/databases"),
        ("GET", "/v1"),
        ("GET", "/"),
        ("GET", "/v1/databases/db1/extra"),
        ("GET", "/v1/databasesX"),
        ("DELETE", "/v1/databases/db1/policies"),
        ("DELETE", "/v1/databases/db1/policies/p9/x"),
        ("GET", "/v1/reportsX"),
        ("GET", "/v1/report"),
        ("POST", "/health"),
    ])
    func unmatchedIsDenied(method: String, path: String) {
        #expect(table().requirement(method: method, normalizedPath: path) == .denied)
    }

    @Test func singleStarMatchesExactlyOneSegment() {
        let routes = [RouteSettings(method: "GET", path: "/a/*/c", scopes: ["read:logs"])]
        #expect(table(routes).requirement(method: "GET", normalizedPath: "/a/b/c") == .scopes(["read:logs"]))
        #expect(
            table(routes).requirement(method: "GET", normalizedPath: "/a/anything-at-all/c") == .scopes(["read:logs"])
        )
        #expect(table(routes).requirement(method: "GET", normalizedPath: "/a/c") == .denied)
        #expect(table(routes).requirement(method: "GET", normalizedPath: "/a/b/b2/c") == .denied)
        #expect(table(routes).requirement(method: "GET", normalizedPath: "/a/b/c/d") == .denied)
    }

    @Test func doubleStarMatchesAnyRestIncludingNothing() {
        let t = table()
        for path in ["/v1/reports", "/v1/reports/", "/v1/reports/r1", "/v1/reports/r1/pdf", "/v1/reports/a/b/c/d/e"] {
            #expect(t.requirement(method: "GET", normalizedPath: path) == .scopes(["read:reports"]), "\(path)")
        }
        let everything = table([RouteSettings(method: nil, path: "/**", scopes: ["admin"])])
        for path in ["/", "/x", "/x/y/z"] {
            #expect(everything.requirement(method: "PATCH", normalizedPath: path) == .scopes(["admin"]), "\(path)")
        }
    }

    @Test func nilMethodMatchesEveryMethod() {
        for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND"] {
            #expect(
                table().requirement(method: method, normalizedPath: "/v1/reports/x") == .scopes(["read:reports"]),
                "\(method)"
            )
        }
    }

    @Test func getRouteCoversHeadButNotTheOtherWayRound() {
        #expect(table().requirement(method: "HEAD", normalizedPath: "/v1/databases") == .scopes(["read:databases"]))
        #expect(
            table().requirement(method: "HEAD", normalizedPath: "/v1/databases/db1")
                == .scopes(["read:databases", "read:policies"])
        )
        #expect(table().requirement(method: "HEAD", normalizedPath: "/v1/head-only") == .scopes(["read:logs"]))
        #expect(table().requirement(method: "GET", normalizedPath: "/v1/head-only") == .denied)
        // POST does not cover HEAD.
        let postOnly = table([RouteSettings(method: "POST", path: "/x", scopes: [])])
        #expect(postOnly.requirement(method: "HEAD", normalizedPath: "/x") == .denied)
    }

    @Test func methodsAreCaseSensitive() {
        #expect(table().requirement(method: "get", normalizedPath: "/v1/databases") == .denied)
        #expect(table().requirement(method: "Post", normalizedPath: "/v1/databases") == .denied)
    }

    @Test func pathsAreCaseSensitive() {
        let routes = [RouteSettings(method: "GET", path: "/v1/x", scopes: ["read:logs"])]
        #expect(table(routes).requirement(method: "GET", normalizedPath: "/v1/x") == .scopes(["read:logs"]))
        #expect(table(routes).requirement(method: "GET", normalizedPath: "/V1/x") == .denied)
        #expect(table(routes).requirement(method: "GET", normalizedPath: "/v1/X") == .denied)
    }

    @Test func firstMatchWins() {
        let wildcardFirst = [
            RouteSettings(method: "GET", path: "/v1/x/*", scopes: ["read:logs"]),
            RouteSettings(method: "GET", path: "/v1/x/special", scopes: ["admin"]),
        ]
        #expect(
            table(wildcardFirst).requirement(method: "GET", normalizedPath: "/v1/x/special") == .scopes(["read:logs"])
        )
        #expect(
            table(Array(wildcardFirst.reversed())).requirement(method: "GET", normalizedPath: "/v1/x/special")
                == .scopes(["admin"])
        )
        #expect(
            table(Array(wildcardFirst.reversed())).requirement(method: "GET", normalizedPath: "/v1/x/other")
                == .scopes(["read:logs"])
        )

        // A public route listed first opens the path; listed second it does not.
        let publicFirst = [
            RouteSettings(method: nil, path: "/status", scopes: [], isPublic: true),
            RouteSettings(method: nil, path: "/status", scopes: ["admin"]),
        ]
        #expect(table(publicFirst).requirement(method: "GET", normalizedPath: "/status") == .open)
        #expect(
            table(Array(publicFirst.reversed())).requirement(method: "GET", normalizedPath: "/status")
                == .scopes(["admin"])
        )

        // A route for another method does not stop the search.
        let methodThenAny = [
            RouteSettings(method: "POST", path: "/y", scopes: ["write:alerts"]),
            RouteSettings(method: nil, path: "/y", scopes: ["read:alerts"]),
        ]
        #expect(table(methodThenAny).requirement(method: "POST", normalizedPath: "/y") == .scopes(["write:alerts"]))
        #expect(table(methodThenAny).requirement(method: "GET", normalizedPath: "/y") == .scopes(["read:alerts"]))
    }

    @Test func publicRouteIsOpenWhateverScopesItLists() {
        #expect(table().requirement(method: "GET", normalizedPath: "/health") == .open)
    }

    @Test func routeWithNoScopesNeedsAnyCredential() {
        let routes = [RouteSettings(method: "GET", path: "/me", scopes: [])]
        #expect(table(routes).requirement(method: "GET", normalizedPath: "/me") == .scopes([]))
    }

    @Test func unmatchedPolicy() {
        #expect(table(unmatched: .deny).requirement(method: "GET", normalizedPath: "/nowhere") == .denied)
        #expect(table(unmatched: .authenticate).requirement(method: "GET", normalizedPath: "/nowhere") == .scopes([]))
        #expect(
            table(unmatched: .authenticate).requirement(method: "PUT", normalizedPath: "/v1/databases") == .scopes([])
        )
        // Matched routes are unaffected by the policy.
        #expect(
            table(unmatched: .authenticate).requirement(method: "GET", normalizedPath: "/v1/databases")
                == .scopes(["read:databases"])
        )
        #expect(table([], unmatched: .deny).requirement(method: "GET", normalizedPath: "/") == .denied)
        #expect(table([], unmatched: .authenticate).requirement(method: "GET", normalizedPath: "/") == .scopes([]))
    }

    @Test func rootRouteMatchesOnlyTheRoot() {
        let routes = [RouteSettings(method: "GET", path: "/", scopes: ["read:logs"])]
        #expect(table(routes).requirement(method: "GET", normalizedPath: "/") == .scopes(["read:logs"]))
        #expect(table(routes).requirement(method: "GET", normalizedPath: "/x") == .denied)
    }
}
