import ArgumentParser
import GatewayConfig
import GatewayCrypto
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
            var configuration = GatewayConfiguration(server: server, upstream: upstream, logging: logging)
            configuration.routes = RouteSettings.dbAuditDefaults
            // The demo is its own token issuer, with a signing key made for this run only.
            let signingKey = try AsymmetricKey.generate(.ed25519)
            configuration.jwt.issuer = "urn:dbaudit-gateway:demo"
            configuration.jwt.passwordHashCost = 12
            configuration.jwt.signingKeys = [
                SigningKeySettings(
                    keyID: "demo", algorithm: .edDSA, privateKeyFile: "(generated at start)",
                    privateKeyPEM: Secret(try signingKey.privateKeyPEM()), active: true)
            ]
            let gateway = try GatewayServer(configuration: configuration, logger: logger, group: group)
            let demoPassword = "demo-password-" + Hex.encode(SecureRandom.bytes(4))
            try await gateway.createUser(
                email: "demo@example.com", scopes: ["read:databases", "read:logs", "write:alerts"], password: demoPassword)
            // Keys live in this process only (no Redis): seed two to try.
            let reader = try await gateway.createAPIKey(
                name: "demo reader",
                scopes: ["read:databases", "read:policies", "read:alerts", "read:logs", "read:reports"],
                test: true,
                owner: "demo-user"
            )
            let admin = try await gateway.createAPIKey(name: "demo admin", scopes: ["admin"], test: true, owner: "demo-admin")
            let echoPort = echo.port
            let service = GatewayService(server: gateway, configurationPath: nil) { server in
                let port = server.boundAddresses.first?.port ?? 0
                let base = "http://127.0.0.1:\(port)"
                print(
                    """

                    dbaudit-gateway demo is running.
                      gateway:  \(base)  ->  built-in echo upstream on 127.0.0.1:\(echoPort)
                      API keys (in memory, gone when the demo stops):
                        reader (read:* scopes): \(reader.key)
                        admin:                  \(admin.key)
                    Try:
                      curl -i \(base)/v1/databases -H "Authorization: Bearer \(reader.key)"
                      curl -i -X POST \(base)/v1/policies -H "Authorization: Bearer \(reader.key)"    (403: no write:policies)
                      curl -i \(base)/v1/databases    (401: no credential)
                      curl -i \(base)/v1/api-keys -H "Authorization: Bearer \(admin.key)"
                    Log in as a user (JWT access token + rotating refresh token):
                      curl -s -X POST \(base)/v1/auth/login -d '{"email":"demo@example.com","password":"\(demoPassword)"}'
                      curl -i \(base)/v1/databases -H "Authorization: Bearer <access_token>"
                      curl -s \(base)/.well-known/jwks.json
                    The echo upstream answers with the request it received: look for X-DBAudit-Subject,
                    X-DBAudit-Scopes, X-Request-Id and X-Forwarded-For. Stop with Ctrl-C.

                    """
                )
                fflush(nil)
            }
            let serviceGroup = ServiceGroup(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            do {
                try await serviceGroup.run()
            } catch let error as ListenError where error.reason == .inUse {
                FileHandleOutput.standardError(
                    "dbaudit-gateway: \(error.description).\n"
                        + "Pick another port: dbaudit-gateway demo --port \(self.port == 65535 ? 8081 : self.port + 1) (or --port 0 for any free one).\n")
                await echo.stop()
                try? await group.shutdownGracefully()
                throw ExitCode(1)
            }
            await echo.stop()
            try await group.shutdownGracefully()
        }
    }
}
