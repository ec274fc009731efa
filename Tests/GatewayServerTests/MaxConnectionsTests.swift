import Testing

@testable import GatewayServer

/// `[server] max_connections` with real loopback connections: the connection over the limit
/// is closed unanswered and counted; a closed connection frees its slot; a reload changes
/// the limit.
@Suite("max_connections")
struct MaxConnectionsTests {
    @Test("the connection over the limit is refused and counted")
    func overTheLimitIsRefused() async throws {
        try await withGateway(server: "max_connections = 1") { gateway, upstreams in
            let first = try await gateway.connect()
            #expect(try await first.get("/first") == .init(status: 200, body: "primary /first"))

            #expect(await answer(port: gateway.port, group: gateway.group, path: "/second") == nil)

            #expect(gateway.server.lifecycleCounters.refused == 1)
            #expect(gateway.server.openConnections == 1)
            #expect(!upstreams[0].paths.contains("/second"))
            // The admitted connection still works.
            #expect(try await first.get("/again") == .init(status: 200, body: "primary /again"))

            await first.close()
            try await waitUntil("the closed connection to free its slot") { gateway.server.openConnections == 0 }
            #expect(try await gateway.get("/third") == .init(status: 200, body: "primary /third"))
            #expect(gateway.server.lifecycleCounters.refused == 1)
        }
    }

    @Test("a reload raises the limit for the next connection")
    func aReloadChangesTheLimit() async throws {
        try await withGateway(server: "max_connections = 1") { gateway, upstreams in
            let first = try await gateway.connect()
            #expect(try await first.get("/first") == .init(status: 200, body: "primary /first"))

            let applied = try await gateway.reload(
                RunningGateway.configuration(upstreamPort: upstreams[0].port, server: "max_connections = 2")
            )

            #expect(applied)
            #expect(try await gateway.get("/second") == .init(status: 200, body: "primary /second"))
            #expect(gateway.server.lifecycleCounters.refused == 0)
            await first.close()
        }
    }
}
