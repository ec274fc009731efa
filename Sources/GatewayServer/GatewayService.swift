import GatewayConfig
import Logging
import ServiceLifecycle
import UnixSignals

/// The gateway as a swift-service-lifecycle `Service`: binds, serves, reloads on SIGHUP,
/// and drains on graceful shutdown (SIGTERM/SIGINT, delivered by the `ServiceGroup`).
package struct GatewayService: Service {
    private let server: GatewayServer
    private let configurationPath: String?
    private let onReady: @Sendable (GatewayServer) -> Void

    /// - Parameters:
    ///   - configurationPath: the file SIGHUP re-reads; nil disables reload (demo).
    ///   - onReady: called once the listeners are bound.
    package init(
        server: GatewayServer,
        configurationPath: String?,
        onReady: @escaping @Sendable (GatewayServer) -> Void = { _ in }
    ) {
        self.server = server
        self.configurationPath = configurationPath
        self.onReady = onReady
    }

    package func run() async throws {
        // Trap SIGHUP before binding, so a reload sent right after readiness is not lost
        // to the default action (terminate).
        let reloadSignals = await UnixSignalsSequence(trapping: .sighup)
        try await self.server.start()
        self.onReady(self.server)
        let server = self.server
        let path = self.configurationPath
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in reloadSignals {
                    guard let path else { continue }
                    await server.reload(from: path)
                }
            }
            group.addTask {
                // Returns when the group starts a graceful shutdown (or is cancelled).
                try? await gracefulShutdown()
            }
            _ = await group.next()
            group.cancelAll()
        }
        await self.server.drain()
    }
}
