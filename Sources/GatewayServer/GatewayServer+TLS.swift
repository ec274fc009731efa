package import GatewayConfig
package import GatewayProxy
import GatewayRedis
import GatewayTLS

/// The TLS contexts of a configuration could not be built: each problem names the
/// section and gives OpenSSL's reason (never a passphrase). Any thread.
package struct TLSSetupError: Error, Sendable, CustomStringConvertible {
    package var problems: [String]

    package var description: String { self.problems.joined(separator: "\n") }
}

extension GatewayServer {
    /// Loads `[server.tls]` (every certificate, each key checked against its certificate)
    /// and, for an `https://` upstream, the client context. Reads files: call it at start,
    /// on reload or from `check-config`, never on an event loop.
    package static func makeTLSContexts(
        _ configuration: GatewayConfiguration
    ) throws(TLSSetupError) -> GatewayTLSContexts {
        var contexts = GatewayTLSContexts()
        var problems: [String] = []
        if let settings = configuration.server.tls {
            do {
                contexts.server = try TLSContext.server(Self.serverTLSConfiguration(settings))
            } catch {
                problems.append("server.tls: \(error.description)")
            }
        }
        let upstream = configuration.upstream
        if upstream.isTLS {
            var client = TLSClientConfiguration(caFile: upstream.caFile)
            if let certificate = upstream.clientCertificateFile, let key = upstream.clientKeyFile {
                client.certificate = TLSCertificateSource(certificateChainFile: certificate, privateKeyFile: key)
            }
            do {
                contexts.upstream = try TLSContext.client(client)
            } catch {
                problems.append("upstream: \(error.description)")
            }
        }
        if let redis = configuration.redis {
            do {
                try RedisConnectors.prepare(redis)
            } catch {
                problems.append("redis: \(error)")
            }
        }
        guard problems.isEmpty else { throw TLSSetupError(problems: problems) }
        return contexts
    }

    static func serverTLSConfiguration(_ settings: ServerTLSSettings) -> TLSServerConfiguration {
        var configuration = TLSServerConfiguration(
            certificate: TLSCertificateSource(
                certificateChainFile: settings.certificateFile,
                privateKeyFile: settings.privateKeyFile,
                privateKeyPassphrase: settings.privateKeyPassphrase?.value
            )
        )
        configuration.sniCertificates = settings.certificates.map { entry in
            TLSServerConfiguration.SNICertificate(
                serverNames: entry.serverNames,
                certificate: TLSCertificateSource(
                    certificateChainFile: entry.certificateFile,
                    privateKeyFile: entry.privateKeyFile,
                    privateKeyPassphrase: entry.privateKeyPassphrase?.value
                )
            )
        }
        switch settings.minimumVersion {
        case .v1_2: configuration.minimumVersion = .v1_2
        case .v1_3: configuration.minimumVersion = .v1_3
        }
        configuration.clientCAFile = settings.clientCAFile
        switch settings.clientAuthentication {
        case .none: configuration.clientAuthentication = .none
        case .optional: configuration.clientAuthentication = .optional
        case .required: configuration.clientAuthentication = .required
        }
        configuration.sessionTimeout = settings.sessionTimeout
        return configuration
    }
}
