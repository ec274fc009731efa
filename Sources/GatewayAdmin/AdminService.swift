package import GatewayConfig
import GatewayCore
package import Logging
package import NIOCore
import ServiceLifecycle

/// The admin listener as a swift-service-lifecycle `Service`: binds `[admin] listen` when
/// run, serves until the group shuts down gracefully (or is cancelled), then closes.
///
/// Listed before the gateway in the `ServiceGroup`, so it closes after the gateway's drain
/// (the group stops services in reverse order): `/readyz` says "draining" meanwhile. The
/// gateway waits for `bound()` before binding its own listeners, so a taken admin port
/// stops the start before anything is served. `run` is called once, by the group's task;
/// `bound()` from any task.
package struct AdminService: Service {
    private let group: any EventLoopGroup
    private let settings: AdminSettings
    private let sources: AdminServer.Sources
    private let logger: Logger
    private let binding = AdminBinding()

    package init(group: any EventLoopGroup, settings: AdminSettings, sources: AdminServer.Sources, logger: Logger) {
        self.group = group
        self.settings = settings
        self.sources = sources
        self.logger = logger
    }

    /// The port the admin listener bound (tests bind port 0); throws the `ListenError` (or
    /// other error) that stopped it. Waits until `run` has tried to bind.
    package func bound() async throws -> Int {
        try await self.binding.port()
    }

    package func run() async throws {
        let server: AdminServer
        do {
            server = try await AdminServer.start(group: self.group, settings: self.settings, sources: self.sources)
        } catch {
            let failure =
                ListenError.classify(error, address: self.settings.listen.description, listener: "admin listener")
                ?? error
            self.binding.fail(failure)
            throw failure
        }
        self.logger.notice("admin listening", metadata: ["address": "\(self.settings.listen.host):\(server.port)"])
        self.binding.succeed(server.port)
        // Returns on graceful shutdown, throws on cancellation: either way the listener closes.
        try? await gracefulShutdown()
        await server.stop()
    }
}
