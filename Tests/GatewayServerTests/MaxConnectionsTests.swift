import Testing

@testable import GatewayServer

/// `[server] max_connections` with real loopback connections: at the limit a connection
/// waiting for a request makes room; when every connection is inside an exchange, the new one
/// is closed unanswered and counted; a closed connection frees its slot; a reload changes the
/// limit.
@Suite("max_connections")
struct MaxConnectionsTests {
    @Test("the connection over the limit is refused and counted when every connection is inside an exchange")
    func overTheLimitIsRefused() async throws {
        try await withGateway(server: "max_connections = 1") { gateway, upstreams in
            let first = try await gateway.connect()
            #expect(try await first.get("/first") == .init(status: 200, body: "primary /first"))
            let inFlight = Task { try await first.get("/hold/1") }
            try await waitUntil("the upstream to receive /hold/1") { upstreams[0].paths.contains("/hold/1") }

            #expect(await answer(port: gateway.port, group: gateway.group, path: "/second") == nil)

            #expect(gateway.server.lifecycleCounters.refused == 1)
            #expect(gateway.server.closedWaitingConnections == 0)
            #expect(gateway.server.openConnections == 1)
            #expect(!upstreams[0].paths.contains("/second"))
            // The admitted connection still works.
            upstreams[0].releaseHeld()
            #expect(try await inFlight.value == .init(status: 200, body: "primary /hold/1"))
            #expect(try await first.get("/again") == .init(status: 200, body: "primary /again"))

            await first.close()
            try await waitUntil("the closed connection to free its slot") { gateway.server.openConnections == 0 }
            #expect(try await gateway.get("/third") == .init(status: 200, body: "primary /third"))
            #expect(gateway.server.lifecycleCounters.refused == 1)
        }
    }

    @Test("at the limit, a connection waiting for a request is closed to admit the new one")
    func aWaitingConnectionMakesRoom() async throws {
        // Two connections in a row land on the two event loops, so the newcomer's loop has
        // an idle connection to close, whichever loop it lands on.
        try await withGateway(server: "max_connections = 2") { gateway, upstreams in
            let idle = [try await gateway.connect(), try await gateway.connect()]
            for (index, client) in idle.enumerated() {
                #expect(try await client.get("/idle/\(index)") == .init(status: 200, body: "primary /idle/\(index)"))
            }

            #expect(await answer(port: gateway.port, group: gateway.group, path: "/second") != nil)

            #expect(gateway.server.closedWaitingConnections == 1)
            #expect(gateway.server.lifecycleCounters.refused == 0)
            #expect(upstreams[0].paths.contains("/second"))
            // The newcomer closed after its answer, one idle connection was closed for it.
            try await waitUntil("one idle connection to remain") { gateway.server.openConnections == 1 }
            for client in idle { await client.close() }
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
