import ArgumentParser
import GatewayConfig
import GatewayServer
import Logging
import NIOPosix
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

extension GatewayCommand {
    /// `demo`: the gateway on embedded defaults with a built-in echo upstream, no config
    /// file and no Redis, for a first look.
    struct Demo: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run on embedded defaults with a built-in echo upstream (no config file, no Redis)."
        )

        @Option(name: .long, help: "Port for the gateway on 127.0.0.1 (0 picks a free one).")
        var port: Int = 8080

        func run() async throws {
            var logging = LoggingSettings()
            logging.format = .text
            let logger = Logger.gateway(logging)
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
            let echo = try await EchoUpstream.start(group: group)
            var upstream = UpstreamSettings(host: "127.0.0.1", port: echo.port)
            upstream.connectTimeout = .seconds(1)
            var server = ServerSettings()
            server.listen = [ListenAddress(host: "127.0.0.1", port: self.port)]
            server.drainTimeout = .seconds(5)
            let configuration = GatewayConfiguration(server: server, upstream: upstream, logging: logging)
            let gateway = GatewayServer(configuration: configuration, logger: logger, group: group)
            let echoPort = echo.port
            let service = GatewayService(server: gateway, configurationPath: nil) { server in
                let port = server.boundAddresses.first?.port ?? 0
                print(
                    """

                    dbaudit-gateway demo is running.
                      gateway:  http://127.0.0.1:\(port)  ->  built-in echo upstream on 127.0.0.1:\(echoPort)
                    Try:
                      curl -i http://127.0.0.1:\(port)/v1/databases
                    The echo upstream answers with the request it received: look for X-Request-Id,
                    X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host. Stop with Ctrl-C.

                    """
                )
                fflush(nil)
            }
            let serviceGroup = ServiceGroup(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            try await serviceGroup.run()
            await echo.stop()
            try await group.shutdownGracefully()
        }
    }
}
