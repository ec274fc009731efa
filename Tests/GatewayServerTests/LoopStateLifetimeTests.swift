import GatewayAuth
import GatewayConfig
import Logging
import NIOCore
import NIOPosix
import Testing

@testable import GatewayProxy
@testable import GatewayServer

private let quiet = Logger(label: "loop-state-lifetime-tests", factory: { _ in SwiftLogNoOpLogHandler() })

private func configuration(
    upstreamPort: Int = 9000,
    _ adjust: (inout GatewayConfiguration) -> Void = { _ in }
) -> GatewayConfiguration {
    var configuration = GatewayConfiguration(upstream: UpstreamSettings(host: "backend.internal", port: upstreamPort))
    configuration.server.listen = [ListenAddress(host: "127.0.0.1", port: 0)]
    configuration.server.eventLoops = 2
    adjust(&configuration)
    return configuration
}

/// A configuration that replaces everything a reload can replace on a loop: the routes, the
/// upstream (so a new pool), and `[auth.jwt]` (so a new verifier with its cache).
private func reloaded(_ round: Int) -> GatewayConfiguration {
    configuration(upstreamPort: 9001 + round) {
        $0.routes = [RouteSettings(method: "GET", path: "/v\(round)/**", scopes: ["read"], isPublic: false)]
        $0.jwt.issuers = [
            IssuerSettings(
                issuer: "https://idp\(round).example",
                keySource: .jwksURL("https://idp\(round).example/jwks.json"),
                audiences: ["dbaudit-api"]
            )
        ]
    }
}

/// Objects watched without keeping them alive. The weak references are written on the
/// objects' loops and read after those loops are done with them (or on them).
private final class Watched: @unchecked Sendable {
    private var references: [(name: String, get: () -> AnyObject?)] = []

    func watch(_ name: String, _ object: AnyObject?) {
        weak let weakObject = object
        self.references.append((name, { weakObject }))
    }

    /// The names of the watched objects still alive.
    var alive: [String] { self.references.filter { $0.get() != nil }.map(\.name) }
    var count: Int { self.references.count }
}

/// Records, on each loop, the state a reload replaces: the snapshot in force, its upstream
/// pool and the loop's JWT verifier.
private func watchReplaceableState(of server: GatewayServer, into watched: Watched) async throws {
    for (index, assembly) in server.loopAssemblies.enumerated() {
        try await assembly.eventLoop.submit {
            let loop = assembly.value
            watched.watch("loop \(index) snapshot", loop.context.snapshot)
            watched.watch("loop \(index) upstream pool", loop.context.snapshot.pool)
            watched.watch("loop \(index) JWT verifier", loop.jwtAuthenticator)
        }.get()
    }
}

/// Each loop's state must die with its server: nothing the server put on a loop may keep it
/// alive after a reload replaced it (a leak that grows with every SIGHUP), nor after the
/// server drained and was released (LeakSanitizer reported whole loops' state as cycles).
@Suite struct LoopStateLifetimeTests {
    @Test func aReloadFreesTheStateItReplaces() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let server = try await GatewayServer(
            application: GatewayApplication.build(from: reloaded(0)),
            logger: quiet,
            group: group
        )
        let first = Watched()
        try await watchReplaceableState(of: server, into: first)
        #expect(first.count == 6)
        #expect(first.alive.count == 6)
        for round in 1...4 {
            await server.apply(try GatewayApplication.build(from: reloaded(round)), logger: quiet)
        }
        // No request holds the first configuration: everything built for it is gone, while
        // the server still runs.
        for assembly in server.loopAssemblies {
            try await assembly.eventLoop.submit {}.get()
        }
        #expect(first.alive == [])

        // What is in force now is alive (the check above can tell).
        let current = Watched()
        try await watchReplaceableState(of: server, into: current)
        #expect(current.alive.count == 6)
        await server.drain()
        try await group.shutdownGracefully()
    }

    @Test func aStoppedServerFreesEveryLoopsState() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let watched = Watched()
        do {
            // In-memory stores (no `[redis]`): their revocation listeners reach every loop.
            let server = try await GatewayServer(
                application: GatewayApplication.build(from: reloaded(0)),
                logger: quiet,
                group: group
            )
            for (index, assembly) in server.loopAssemblies.enumerated() {
                try await assembly.eventLoop.submit {
                    let loop = assembly.value
                    watched.watch("loop \(index) assembly", loop)
                    watched.watch("loop \(index) context", loop.context)
                    watched.watch("loop \(index) authenticator", loop.authenticator)
                    watched.watch("loop \(index) metrics", loop.context.metrics)
                }.get()
            }
            watched.watch("server", server)
            await server.drain()
        }
        try await group.shutdownGracefully()
        #expect(watched.count == 9)
        #expect(watched.alive == [])
    }
}
