import ArgumentParser
import Foundation
import GatewayAdmin
import GatewayAuth
import GatewayConfig
import GatewayCore
import GatewayServer
import Logging
import NIOPosix
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// `dbaudit-gateway`: parses arguments and hands over to the server module; nothing else
/// lives here, so tests can build the application without the CLI.
@main
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dbaudit-gateway",
        abstract: "Authentication gateway in front of the DB Audit API.",
        version: GatewayVersion.current,
        subcommands: [Run.self, CheckConfig.self, Keys.self, Users.self, Clients.self, Demo.self, Explain.self],
        defaultSubcommand: nil
    )

    /// As the library's, except that `explain` reports a usage error with exit status 2
    /// (its 0 and 1 mean allow and deny).
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let failure as UsageFailure {
            FileHandleOutput.standardError("dbaudit-gateway explain: \(failure.description)\n")
            Foundation.exit(2)
        } catch {
            if CommandLine.arguments.dropFirst().first == "explain", exitCode(for: error) == .validationFailure {
                FileHandleOutput.standardError(fullMessage(for: error) + "\n")
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

extension GatewayCommand {
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the gateway with a configuration file.")

        @Option(name: .long, help: "Path of gateway.conf.")
        var config: String

        func run() async throws {
            let configuration = try loadConfigurationOrExit(self.config)
            let logger = Logger.gateway(configuration.logging)
            // The event loops outlive every service: the admin listener closes after the
            // gateway's drain, on the same loops.
            let eventLoops = MultiThreadedEventLoopGroup(
                numberOfThreads: GatewayServer.eventLoopCount(configuration.server)
            )
            let server: GatewayServer
            do {
                let application = try GatewayApplication.build(from: configuration)
                server = try await GatewayServer(application: application, logger: logger, group: eventLoops)
            } catch let error as TLSSetupError {
                try? await eventLoops.shutdownGracefully()
                logger.critical("cannot load TLS certificates", metadata: ["problems": "\(error.description)"])
                throw ExitCode(1)
            } catch let error as IdentitySetupError {
                try? await eventLoops.shutdownGracefully()
                FileHandleOutput.standardError("dbaudit-gateway: cannot start: auth.jwt: \(error)\n")
                throw ExitCode(1)
            } catch {
                try? await eventLoops.shutdownGracefully()
                FileHandleOutput.standardError("dbaudit-gateway: cannot start: \(error)\n")
                throw ExitCode(1)
            }
            // Listed first so the group stops it last, once the gateway has drained.
            let admin = configuration.admin.map { settings in
                AdminService(group: eventLoops, settings: settings, sources: server.adminSources, logger: logger)
            }
            let gateway = GatewayService(
                server: server,
                configurationPath: self.config,
                beforeStart: { _ = try await admin?.bound() }
            )
            var services: [any Service] = admin.map { [$0] } ?? []
            services.append(gateway)
            // After the gateway: the group stops them first, before its drain.
            services += server.backgroundServices
            let group = ServiceGroup(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
            do {
                try await group.run()
            } catch let error as ListenError {
                logger.critical("cannot start", metadata: ["error": "\(error.description)"])
                FileHandleOutput.standardError("dbaudit-gateway: \(error.description)\n")
                try? await eventLoops.shutdownGracefully()
                throw ExitCode(1)
            } catch {
                logger.critical("gateway stopped on an error", metadata: ["error": "\(String(describing: error))"])
                try? await eventLoops.shutdownGracefully()
                throw ExitCode(1)
            }
            try? await eventLoops.shutdownGracefully()
        }
    }

    struct CheckConfig: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check-config",
            abstract: "Validate a configuration file and print the effective configuration (secrets redacted)."
        )

        @Option(name: .long, help: "Path of gateway.conf.")
        var config: String

        @Flag(
            name: .long,
            help: "Also fetch each [[sso.providers]] OIDC discovery document and check it (network access)."
        )
        var online = false

        @Flag(
            name: .long,
            help:
                "On success print one line (<path>: configuration OK) instead of the effective configuration (the systemd unit's start and reload checks use it, so the journal does not get the whole configuration on every start)."
        )
        var quiet = false

        func run() async throws {
            let configuration: GatewayConfiguration
            do {
                configuration = try ConfigurationLoader.load(path: self.config)
            } catch {
                FileHandleOutput.standardError("\(error)\n")
                FileHandleOutput.standardError("dbaudit-gateway: configuration check failed\n")
                throw ExitCode(1)
            }
            // Certificates, keys and JWKS files are loaded as `run` would, so a mismatched pair
            // or a wrong passphrase fails here rather than at start or reload.
            let application: GatewayApplication
            do {
                application = try GatewayApplication.build(from: configuration)
            } catch let error as TLSSetupError {
                FileHandleOutput.standardError("\(self.config): \(error.description)\n")
                FileHandleOutput.standardError("dbaudit-gateway: configuration check failed\n")
                throw ExitCode(1)
            } catch {
                FileHandleOutput.standardError("\(self.config): auth.jwt: \(error)\n")
                FileHandleOutput.standardError("dbaudit-gateway: configuration check failed\n")
                throw ExitCode(1)
            }
            for warning in application.warnings { FileHandleOutput.standardError("warning: \(warning)\n") }
            if self.online {
                let outcomes = await SSOOnlineCheck.run(configuration)
                for outcome in outcomes {
                    let line = "\(self.config): sso.providers \(outcome.provider): \(outcome.message)\n"
                    if outcome.ok {
                        FileHandleOutput.standardError(line)
                    } else {
                        FileHandleOutput.standardError("error: " + line)
                    }
                }
                if outcomes.contains(where: { !$0.ok }) {
                    FileHandleOutput.standardError("dbaudit-gateway: configuration check failed\n")
                    throw ExitCode(1)
                }
            }
            if self.quiet {
                print("\(self.config): configuration OK")
                return
            }
            print("# effective configuration of \(self.config): OK")
            print(configuration.renderedTOML(), terminator: "")
        }
    }
}

/// The configuration at `path`, or its problems on stderr and exit code 1.
func loadConfigurationOrExit(_ path: String) throws -> GatewayConfiguration {
    do {
        return try ConfigurationLoader.load(path: path)
    } catch {
        FileHandleOutput.standardError("dbaudit-gateway: configuration is invalid:\n\(error.description)\n")
        throw ExitCode(1)
    }
}

/// What `make` builds from the configuration at `path` (the `keys`, `users` and `clients`
/// commands' store access), or the problem on stderr and exit code 1.
func managementOrExit<Management>(
    _ path: String,
    _ make: (GatewayConfiguration) throws -> Management
) throws -> Management {
    let configuration = try loadConfigurationOrExit(path)
    do {
        return try make(configuration)
    } catch {
        FileHandleOutput.standardError("dbaudit-gateway: \(error)\n")
        throw ExitCode(1)
    }
}

/// A management command's connection to the stores of a configuration, closed once its work
/// is done.
protocol ManagementSession: Sendable {
    init(configuration: GatewayConfiguration) throws
    func shutdown() async
}

extension KeyManagement: ManagementSession {}
extension UserManagement: ManagementSession {}
extension ClientManagement: ManagementSession {}

/// `operation` on `management`, whose connection is closed whatever happens; a failure is
/// written to stderr and becomes exit code 1.
func performOrExit<Management: ManagementSession, Result>(
    _ management: Management,
    _ operation: (Management) async throws -> Result
) async throws -> Result {
    do {
        let result = try await operation(management)
        await management.shutdown()
        return result
    } catch {
        await management.shutdown()
        FileHandleOutput.standardError("dbaudit-gateway: \(error)\n")
        throw ExitCode(1)
    }
}

/// Small stderr writer (print goes to stdout).
enum FileHandleOutput {
    static func standardError(_ text: String) {
        var text = text
        text.withUTF8 { buffer in
            _ = write(2, buffer.baseAddress, buffer.count)
        }
    }
}
