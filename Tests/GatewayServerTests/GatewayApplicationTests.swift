import GatewayAuth
import GatewayConfig
import GatewayCore
import GatewayServer
import GatewayTestSupport
import Testing

private func configuration(_ adjust: (inout GatewayConfiguration) -> Void = { _ in }) -> GatewayConfiguration {
    var configuration = GatewayConfiguration(upstream: UpstreamSettings(host: "backend.internal", port: 9000))
    configuration.server.listen = [ListenAddress(host: "127.0.0.1", port: 8080)]
    adjust(&configuration)
    return configuration
}

private let remoteIssuer = IssuerSettings(
    issuer: "https://idp.example",
    keySource: .jwksURL("https://idp.example/jwks.json"),
    audiences: ["dbaudit-api"]
)

@Suite struct GatewayApplicationBuildTests {
    @Test func aConfigurationWithoutFilesBuilds() throws {
        let application = try GatewayApplication.build(from: configuration())
        #expect(application.tls.server == nil)
        #expect(application.tls.upstream == nil)
        #expect(application.identity == nil)
        #expect(application.warnings.isEmpty)
    }

    @Test func aMissingCertificateIsAThrownErrorNamingTheSection() throws {
        let broken = configuration {
            $0.server.tls = ServerTLSSettings(
                certificateFile: "/nonexistent/dbgw-cert.pem",
                privateKeyFile: "/nonexistent/dbgw-key.pem"
            )
        }
        let error = #expect(throws: TLSSetupError.self) { try GatewayApplication.build(from: broken) }
        #expect(error?.problems.count == 1)
        #expect(error?.problems.first?.hasPrefix("server.tls: ") == true)
    }

    @Test func aCertificateFileThatIsNoCertificateIsAThrownError() throws {
        let garbage = try temporaryFile("not a certificate\n")
        let broken = configuration {
            $0.server.tls = ServerTLSSettings(certificateFile: garbage, privateKeyFile: garbage)
        }
        #expect(throws: TLSSetupError.self) { try GatewayApplication.build(from: broken) }
    }

    @Test func withoutTLSTheCertificatesAreNotRead() throws {
        let broken = configuration {
            $0.server.tls = ServerTLSSettings(
                certificateFile: "/nonexistent/dbgw-cert.pem",
                privateKeyFile: "/nonexistent/dbgw-key.pem"
            )
        }
        let application = try GatewayApplication.build(from: broken, loadingTLS: false)
        #expect(application.tls.server == nil)
    }

    @Test func aBadSigningKeyIsAnIdentityError() throws {
        let broken = configuration {
            $0.jwt.issuer = "https://gw.example"
            $0.jwt.signingKeys = [
                SigningKeySettings(
                    keyID: "k1",
                    privateKeyFile: "/etc/dbgw/k1.pem",
                    privateKeyPEM: Secret("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n"),
                    active: true
                )
            ]
        }
        let error = #expect(throws: IdentitySetupError.self) { try GatewayApplication.build(from: broken) }
        // Names the key, never its contents.
        #expect(error?.description.contains("broken") == false)
    }

    @Test func remoteIssuersAreInTheIdentity() throws {
        let application = try GatewayApplication.build(from: configuration { $0.jwt.issuers = [remoteIssuer] })
        #expect(application.identity?.remoteIssuers.map(\.issuer) == ["https://idp.example"])
    }
}

@Suite struct GatewayApplicationChangeTests {
    private func change(
        from old: GatewayConfiguration,
        to new: GatewayConfiguration
    ) throws -> ApplicationChange {
        try GatewayApplication.build(from: old).changes(to: GatewayApplication.build(from: new))
    }

    @Test func anIdenticalConfigurationChangesNothing() throws {
        let change = try self.change(from: configuration(), to: configuration())
        #expect(change.needsRestart.isEmpty)
        guard case .unchanged = change.identity else {
            Issue.record("identity: \(change.identity)")
            return
        }
        #expect(!change.ssoKeySourcesChanged)
        #expect(!change.introspectionChanged)
        #expect(change.application.configuration == configuration())
    }

    @Test func settingsOnlyARestartChangesAreNamedAndKept() throws {
        let old = configuration()
        let new = configuration {
            $0.server.listen = [ListenAddress(host: "127.0.0.1", port: 9090)]
            $0.server.eventLoops = 3
            $0.redis = RedisSettings(endpoint: .tcp(host: "127.0.0.1", port: 6379))
            $0.admin = AdminSettings()
            $0.apiKeys.pepper = Secret("another pepper")
            $0.server.tls = ServerTLSSettings(certificateFile: "/c.pem", privateKeyFile: "/k.pem")
            $0.server.maxConnections = 7
            $0.routes = [RouteSettings(method: "GET", path: "/v1/**", scopes: ["read"], isPublic: false)]
        }
        let change = try GatewayApplication.build(from: old).changes(
            to: GatewayApplication.build(from: new, loadingTLS: false)
        )
        #expect(
            change.needsRestart == [
                "[server.tls] was added or removed", "server.listen changed", "server.event_loops changed",
                "[redis] changed", "[admin] changed", "the API-key pepper changed",
            ]
        )
        let effective = change.application.configuration
        #expect(effective.server.listen == old.server.listen)
        #expect(effective.server.eventLoops == old.server.eventLoops)
        #expect(effective.redis == nil)
        #expect(effective.admin == nil)
        #expect(effective.apiKeys.pepper == nil)
        #expect(effective.server.tls == nil)
        // What a reload may change is in force.
        #expect(effective.server.maxConnections == 7)
        #expect(effective.routes == new.routes)
    }

    @Test func jwtTurnedOnReplacesTheIdentity() throws {
        let change = try self.change(from: configuration(), to: configuration { $0.jwt.issuers = [remoteIssuer] })
        guard case .replaced(let runtime) = change.identity else {
            Issue.record("identity: \(change.identity)")
            return
        }
        #expect(runtime.remoteIssuers.count == 1)
        #expect(change.application.identity === runtime)
    }

    @Test func jwtTurnedOffRemovesTheIdentity() throws {
        let change = try self.change(from: configuration { $0.jwt.issuers = [remoteIssuer] }, to: configuration())
        guard case .removed = change.identity else {
            Issue.record("identity: \(change.identity)")
            return
        }
        #expect(change.application.identity == nil)
    }

    @Test func anUnchangedJWTSectionKeepsTheRuntimeInForce() throws {
        let old = try GatewayApplication.build(from: configuration { $0.jwt.issuers = [remoteIssuer] })
        let new = try GatewayApplication.build(
            from: configuration {
                $0.jwt.issuers = [remoteIssuer]
                $0.cache.positiveTTL = .seconds(5)
            }
        )
        let change = old.changes(to: new)
        guard case .unchanged = change.identity else {
            Issue.record("identity: \(change.identity)")
            return
        }
        // The runtime the loops' verifiers were built from, not the one just loaded.
        #expect(change.application.identity === old.identity)
        #expect(change.application.configuration.cache.positiveTTL == .seconds(5))
    }

    @Test func anotherSSOProviderChangesTheKeySources() throws {
        let provider = SSOProviderSettings(
            name: "corp",
            displayName: "Corp",
            issuer: "https://sso.example",
            clientID: "gw",
            clientSecret: Secret("s")
        )
        var sso = SSOSettings()
        sso.providers = [provider]
        let change = try self.change(from: configuration(), to: configuration { $0.sso = sso })
        #expect(change.ssoKeySourcesChanged)
        #expect(!change.introspectionChanged)
        var renamed = sso
        renamed.providers[0].displayName = "Corp SSO"
        // A new label is not a new key source.
        let relabel = try self.change(from: configuration { $0.sso = sso }, to: configuration { $0.sso = renamed })
        #expect(!relabel.ssoKeySourcesChanged)
    }
}
