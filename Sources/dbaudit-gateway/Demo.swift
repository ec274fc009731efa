import ArgumentParser
import GatewayAuth
import GatewayConfig
import GatewayCore
import GatewayCrypto
import GatewayOAuth
import GatewayServer
import Logging
import NIOPosix
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

extension GatewayCommand {
    /// `demo`: the gateway on embedded defaults with a built-in echo upstream, no config
    /// file and no Redis, for a first look: API keys, a user who logs in, and the gateway as
    /// an OAuth authorization server with a public and a confidential client.
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
            // The issuer names the listener (RFC 8414: the metadata's endpoints are under it), so
            // "any free port" is chosen here, before the issuer is set.
            let port = self.port == 0 ? try Self.freeLoopbackPort() : self.port
            var server = ServerSettings()
            server.listen = [ListenAddress(host: "127.0.0.1", port: port)]
            server.drainTimeout = .seconds(5)
            var configuration = GatewayConfiguration(server: server, upstream: upstream, logging: logging)
            configuration.routes = RouteSettings.dbAuditDefaults
            // The demo is its own token issuer, with a signing key made for this run only.
            let signingKey = try AsymmetricKey.generate(.ed25519)
            configuration.jwt.issuer = "http://127.0.0.1:\(port)"
            configuration.jwt.passwordHashCost = 12
            configuration.jwt.signingKeys = [
                SigningKeySettings(
                    keyID: "demo",
                    algorithm: .edDSA,
                    privateKeyFile: "(generated at start)",
                    privateKeyPEM: Secret(try signingKey.privateKeyPEM()),
                    active: true
                )
            ]
            // OAuth: a native app (public, code + PKCE) whose loopback redirect URI is the echo
            // upstream itself, so the browser shows the code it was sent back with; and a
            // service (confidential, client credentials) whose secret exists for this run only.
            let clientSecret = "dbaudit_cs_" + Base64URL.encode(SecureRandom.bytes(32))
            var oauth = OAuthSettings()
            oauth.clients = [
                OAuthClientSettings(
                    id: "demo-app",
                    name: "Demo native app",
                    redirectURIs: ["http://127.0.0.1/callback"],
                    grantTypes: [.authorizationCode, .refreshToken],
                    scopes: ["read:databases", "read:logs"],
                    isPublic: true
                ),
                OAuthClientSettings(
                    id: "demo-service",
                    name: "Demo service",
                    grantTypes: [.clientCredentials],
                    scopes: ["read:databases", "read:logs"],
                    secret: Secret(clientSecret)
                ),
            ]
            configuration.oauth = oauth
            let gateway = try GatewayServer(configuration: configuration, logger: logger, group: group)
            let settingsPrefix = configuration.ui.pathPrefix
            let demoPassword = "demo-password-" + Hex.encode(SecureRandom.bytes(4))
            try await gateway.createUser(
                email: "demo@example.com",
                scopes: ["read:databases", "read:logs", "write:alerts"],
                password: demoPassword
            )
            // Keys live in this process only (no Redis): seed two to try.
            let reader = try await gateway.createAPIKey(
                name: "demo reader",
                scopes: ["read:databases", "read:policies", "read:alerts", "read:logs", "read:reports"],
                test: true,
                owner: "demo-user"
            )
            let admin = try await gateway.createAPIKey(
                name: "demo admin",
                scopes: ["admin"],
                test: true,
                owner: "demo-admin"
            )
            let echoPort = echo.port
            // One PKCE pair and state for the printed walk-through (a real client makes new ones
            // for every authorization).
            let verifier = Base64URL.encode(SecureRandom.bytes(32))
            let challenge = PKCE.challenge(for: verifier)
            let state = "demo-" + Hex.encode(SecureRandom.bytes(4))
            let redirectURI = "http://127.0.0.1:\(echoPort)/callback"
            let encodedRedirectURI = "http%3A%2F%2F127.0.0.1%3A\(echoPort)%2Fcallback"
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
                    Settings > API Keys in the browser (create, copy once, revoke your own keys):
                      open \(base)\(settingsPrefix)/api-keys
                      sign in with  e-mail: demo@example.com  password: \(demoPassword)
                    OAuth 2.0 (the gateway is the authorization server; clients in memory):
                      authorization code + PKCE with the public client demo-app: open this URL in a browser,
                      sign in as demo@example.com with the password above and allow:
                        \(base)/oauth/authorize?response_type=code&client_id=demo-app&redirect_uri=\(encodedRedirectURI)&scope=read%3Adatabases%20read%3Alogs&state=\(state)&code_challenge=\(challenge)&code_challenge_method=S256
                      the browser lands on the echo upstream (\(redirectURI)?code=...&state=\(state)&iss=...);
                      put its code into:
                        curl -s -X POST \(base)/oauth/token -d grant_type=authorization_code -d client_id=demo-app -d redirect_uri=\(encodedRedirectURI) -d code_verifier=\(verifier) -d "code=<code>"
                      client credentials with the confidential client demo-service (its secret lives as long as the demo):
                        curl -s -X POST \(base)/oauth/token -u demo-service:\(clientSecret) -d grant_type=client_credentials -d scope=read:databases
                      then: curl -i \(base)/v1/databases -H "Authorization: Bearer <access_token>"
                      curl -s \(base)/.well-known/oauth-authorization-server
                    The echo upstream answers with the request it received: look for X-DBAudit-Subject,
                    X-DBAudit-Scopes, X-Request-Id and X-Forwarded-For. Stop with Ctrl-C.

                    """
                )
                fflush(nil)
            }
            let serviceGroup = ServiceGroup(
                services: [service],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
            do {
                try await serviceGroup.run()
            } catch let error as ListenError where error.reason == .inUse {
                FileHandleOutput.standardError(
                    "dbaudit-gateway: \(error.description).\n"
                        + "Pick another port: dbaudit-gateway demo --port \(port == 65535 ? 8081 : port + 1) (or --port 0 for any free one).\n"
                )
                await echo.stop()
                try? await group.shutdownGracefully()
                throw ExitCode(1)
            }
            await echo.stop()
            try await group.shutdownGracefully()
        }

        /// A port of 127.0.0.1 nothing listens on right now (bound to port 0, read back,
        /// released): the demo's listener takes it a moment later.
        private static func freeLoopbackPort() throws -> Int {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw ExitCode(1) }
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                    bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
                }
            }
            guard bound else { throw ExitCode(1) }
            return Int(UInt16(bigEndian: address.sin_port))
        }
    }
}
