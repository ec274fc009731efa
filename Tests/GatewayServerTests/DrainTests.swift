import NIOCore
import Testing

@testable import GatewayServer

/// `GatewayServer.drain()` with real loopback connections: requests in flight finish, new
/// connections are refused, and `drain_timeout` bounds the wait.
@Suite("Drain")
struct DrainTests {
    @Test("open connections finish their request; new connections are refused")
    func inFlightRequestsFinish() async throws {
        try await withGateway(server: "drain_timeout = \"60s\"") { gateway, upstreams in
            let port = gateway.port
            let group = gateway.group
            let client = try await gateway.connect()
            let inFlight = Task { try await client.get("/hold/1") }
            try await waitUntil("the upstream to receive /hold/1") { upstreams[0].paths.contains("/hold/1") }

            let draining = Task { await gateway.server.drain() }

            try await waitUntil("the drain to begin") { gateway.server.isDraining }
            // A connection accepted just before the listener closed is still served; after
            // that, none is.
            try await waitUntil("the gateway to refuse new connections") {
                await answer(port: port, group: group, path: "/new") == nil
            }
            #expect(await answer(port: port, group: group, path: "/refused") == nil)
            upstreams[0].releaseHeld()
            let response = try await within("the in-flight response") { try await inFlight.value }
            #expect(response == .init(status: 200, body: "primary /hold/1"))
            try await within("the drain to end") { await draining.value }
            try await within("the gateway to close the drained connection") { await client.closed() }
            #expect(!upstreams[0].paths.contains("/refused"))
            #expect(gateway.server.openConnections == 0)
        }
    }

    @Test("drain_timeout closes the connections that did not finish, and the drain ends")
    func theDrainTimeoutIsHonoured() async throws {
        try await withGateway(server: "drain_timeout = \"200ms\"") { gateway, upstreams in
            let client = try await gateway.connect()
            let inFlight = Task { try await client.get("/silent/1") }
            try await waitUntil("the upstream to receive /silent/1") { upstreams[0].paths.contains("/silent/1") }

            // The upstream never answers: only the timeout can end this drain.
            try await within("the drain to end at its timeout") { await gateway.server.drain() }

            await #expect(throws: LoopbackClient.Closed.self) { try await inFlight.value }
            #expect(gateway.server.openConnections == 0)
        }
    }
}

/// The response to `GET path` on a new connection, or nil when the gateway did not answer
/// (connection refused, reset or closed, or left unanswered for seconds).
func answer(port: Int, group: any EventLoopGroup, path: String) async -> LoopbackClient.Response? {
    guard let client = try? await LoopbackClient.connect(port: port, group: group) else { return nil }
    let response = try? await within("an answer to \(path)", .seconds(5)) { try await client.get(path) }
    await client.close()
    return response
}
