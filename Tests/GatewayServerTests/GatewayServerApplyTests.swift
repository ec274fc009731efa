import GatewayAuth
import GatewayConfig
import GatewayProxy
import Logging
import NIOCore
import NIOPosix
import Testing

@testable import GatewayServer

private let quiet = Logger(label: "server-apply-tests", factory: { _ in SwiftLogNoOpLogHandler() })

private func configuration(_ adjust: (inout GatewayConfiguration) -> Void = { _ in }) -> GatewayConfiguration {
    var configuration = GatewayConfiguration(upstream: UpstreamSettings(host: "backend.internal", port: 9000))
    configuration.server.listen = [ListenAddress(host: "127.0.0.1", port: 0)]
    configuration.server.eventLoops = 2
    adjust(&configuration)
    return configuration
}

/// What one loop runs, read on that loop.
private struct LoopView: Sendable {
    var authenticator: ObjectIdentifier
    var routes: Int
    var verifiesJWTs: Bool
    var listen: [ListenAddress]
}

private func views(_ server: GatewayServer) async throws -> [LoopView] {
    var views: [LoopView] = []
    for context in server.loopContexts {
        views.append(
            try await context.eventLoop.submit {
                let loop = context.value
                return LoopView(
                    authenticator: ObjectIdentifier(loop.authenticator),
                    routes: loop.configuration.routes.count,
                    verifiesJWTs: loop.authenticator.jwt != nil,
                    listen: loop.configuration.server.listen
                )
            }.get()
        )
    }
    return views
}

@Suite struct GatewayServerApplyTests {
    @Test func aReloadKeepsEachLoopsAuthenticatorAndPutsTheNewSettingsInForce() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let server = try await GatewayServer(
            application: GatewayApplication.build(from: configuration()),
            logger: quiet,
            group: group
        )
        let before = try await views(server)
        #expect(before.count == 2)
        #expect(before.allSatisfy { $0.routes == 0 && !$0.verifiesJWTs })

        let next = configuration {
            $0.server.listen = [ListenAddress(host: "127.0.0.1", port: 1)]
            $0.routes = [RouteSettings(method: "GET", path: "/v1/**", scopes: ["read"], isPublic: false)]
            $0.jwt.issuers = [
                IssuerSettings(
                    issuer: "https://idp.example",
                    keySource: .jwksURL("https://idp.example/jwks.json"),
                    audiences: ["dbaudit-api"]
                )
            ]
        }
        await server.apply(try GatewayApplication.build(from: next), logger: quiet)
        let after = try await views(server)
        // The same authenticators (so the same credential caches), with the new routes and a
        // JWT verifier; the listen address needs a restart and stays.
        #expect(after.map(\.authenticator) == before.map(\.authenticator))
        #expect(after.allSatisfy { $0.routes == 1 && $0.verifiesJWTs && $0.listen == before[0].listen })
        #expect(server.configuration.server.listen == before[0].listen)
        #expect(server.lifecycleCounters.reloads == 1)

        await server.drain()
        try await group.shutdownGracefully()
    }
}

/// Whether `key` passes a route that needs a credential on `context`'s loop (as the proxy
/// would decide it: a decision caches the key like a request's).
private func passes(_ key: String, on context: NIOLoopBound<LoopContext>) async throws -> Bool {
    let request = ExplainRequest(
        method: "GET",
        target: "/v1/databases",
        headers: [("Authorization", "Bearer " + key)],
        clientAddress: "127.0.0.1"
    )
    return try await context.eventLoop.flatSubmit { Explainer.explain(request, on: context.value) }.get().allowed
}

@Suite struct GatewayServerRevocationTests {
    @Test func aKeyRevokedInProcessLeavesEveryLoopsCache() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let server = try await GatewayServer(
            application: GatewayApplication.build(
                from: configuration {
                    $0.routes = [RouteSettings(method: nil, path: "/**", scopes: [], isPublic: false)]
                }
            ),
            logger: quiet,
            group: group
        )
        let created = try await server.createAPIKey(name: "t", scopes: ["read:databases"], test: true, owner: "o")
        // Every loop has seen (and cached) the key.
        for context in server.loopContexts {
            #expect(try await passes(created.key, on: context))
        }
        let first = server.loopAssemblies[0]
        _ = try await first.eventLoop.flatSubmit { first.value.managementKeyService.revoke(id: created.record.id) }
            .get()
        // Within the cache's positive TTL: only the revocation fan-out makes these refusals.
        for context in server.loopContexts {
            #expect(try await !passes(created.key, on: context))
        }
        await server.drain()
        try await group.shutdownGracefully()
    }
}
