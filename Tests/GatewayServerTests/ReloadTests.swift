import GatewayConfig
import Testing

@testable import GatewayServer

/// `GatewayServer.reload(from:)` on a running gateway with real loopback connections: a
/// valid file is in force for the next request, an invalid one changes nothing.
@Suite("Reload")
struct ReloadTests {
    @Test("a valid file is applied: the next request goes to the new upstream")
    func aValidFileIsApplied() async throws {
        try await withGateway(upstreams: ["primary", "secondary"]) { gateway, upstreams in
            #expect(try await gateway.get("/before") == .init(status: 200, body: "primary /before"))

            let applied = try await gateway.reload(RunningGateway.configuration(upstreamPort: upstreams[1].port))

            #expect(applied)
            #expect(gateway.server.configuration.upstream.port == upstreams[1].port)
            #expect(try await gateway.get("/after") == .init(status: 200, body: "secondary /after"))
            #expect(upstreams[1].paths == ["/after"])
            let counters = gateway.server.lifecycleCounters
            #expect(counters.reloads == 1 && counters.reloadFailures == 0)
        }
    }

    /// A file with `defect` that names `upstreamPort`: applied by mistake, it would show in
    /// the next answer.
    static func invalidFile(_ defect: String, upstreamPort: Int) -> String {
        let valid = RunningGateway.configuration(upstreamPort: upstreamPort)
        switch defect {
        case "not TOML": return "[server\nthis is not toml\n" + valid
        case "a value that does not parse":
            return RunningGateway.configuration(upstreamPort: upstreamPort, server: "drain_timeout = \"soon\"")
        case "an unknown key":
            return RunningGateway.configuration(upstreamPort: upstreamPort, server: "colour = \"blue\"")
        default: return valid
        }
    }

    @Test(
        "an invalid file is refused and the previous configuration kept",
        arguments: ["not TOML", "a value that does not parse", "an unknown key"]
    )
    func anInvalidFileIsRefused(defect: String) async throws {
        try await withGateway(upstreams: ["primary", "secondary"]) { gateway, upstreams in
            let before = gateway.server.configuration

            let applied = try await gateway.reload(Self.invalidFile(defect, upstreamPort: upstreams[1].port))

            #expect(!applied)
            #expect(gateway.server.configuration == before)
            #expect(try await gateway.get("/still") == .init(status: 200, body: "primary /still"))
            #expect(upstreams[1].paths.isEmpty)
            let counters = gateway.server.lifecycleCounters
            #expect(counters.reloads == 0 && counters.reloadFailures == 1)
        }
    }

    @Test("a file that cannot be read is refused and the previous configuration kept")
    func aMissingFileIsRefused() async throws {
        try await withGateway { gateway, _ async throws in
            let before = gateway.server.configuration

            let applied = await gateway.server.reload(from: gateway.configurationPath + ".missing")

            #expect(!applied)
            #expect(gateway.server.configuration == before)
            #expect(try await gateway.get("/still") == .init(status: 200, body: "primary /still"))
            #expect(gateway.server.lifecycleCounters.reloadFailures == 1)
        }
    }
}
