import ArgumentParser
import Foundation
import GatewayConfig
import GatewayCore
import GatewayProxy
import GatewayServer
import Logging

extension GatewayCommand {
    /// `explain`: why the gateway would allow or refuse one request, from its own decision
    /// code against the live stores, without sending the request anywhere.
    struct Explain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Explain why a request would be allowed or refused (nothing is forwarded, no rate-limit token is taken).",
            discussion: """
                Runs the gateway's own decision code (path normalisation, route, credential checks, \
                scopes, rate-limit buckets) against the stores of the configuration. Secrets are never \
                printed: the token appears as a SHA-256 prefix. Exit status: 0 allow, 1 deny, 2 usage error.
                """
        )

        @Option(name: .long, help: "Path of gateway.conf.")
        var config: String
        @Option(name: .long, help: "The request method, e.g. GET.")
        var method: String
        @Option(name: .long, help: "The request target (path and optional query), e.g. /v1/databases.")
        var path: String
        @Option(
            name: .long,
            help: "The bearer credential (visible in the process list: prefer --token-file or --token-stdin)."
        )
        var token: String?
        @Option(name: .long, help: "A file holding the bearer credential.")
        var tokenFile: String?
        @Flag(name: .long, help: "Read the bearer credential from standard input.")
        var tokenStdin = false
        @Option(name: .long, help: "An extra request header 'Name: value' (repeatable).")
        var header: [String] = []
        @Option(name: .long, help: "The client address the gateway would see (default 127.0.0.1).")
        var clientAddress = "127.0.0.1"
        @Flag(name: .long, help: "Print the JSON document described in docs/operations.md.")
        var json = false

        func validate() throws {
            let sources = [self.token != nil, self.tokenFile != nil, self.tokenStdin].filter { $0 }.count
            guard sources <= 1 else {
                throw ValidationError("Use at most one of --token, --token-file, --token-stdin.")
            }
            guard !self.method.isEmpty, self.method.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) else {
                throw ValidationError("--method must be an upper-case method such as GET.")
            }
            guard self.path.hasPrefix("/") else { throw ValidationError("--path must start with /.") }
            for field in self.header where ExplainRequest.parseHeader(field) == nil {
                throw ValidationError("--header must be 'Name: value'.")
            }
        }

        func run() async throws {
            var headers = self.header.compactMap(ExplainRequest.parseHeader)
            if let token = try self.credential() {
                guard !headers.contains(where: { $0.name.lowercased() == "authorization" }) else {
                    throw UsageFailure(
                        "Give the credential either as --token* or as an Authorization header, not both."
                    )
                }
                headers.append(("Authorization", "Bearer " + token))
            }
            var configuration = try loadConfigurationOrExit(self.config)
            // One loop is enough, and its caches start empty like a just-started gateway's.
            configuration.server.eventLoops = 1
            var logging = configuration.logging
            logging.level = .warning
            let logger = Logger.gateway(logging)
            let server: GatewayServer
            do {
                // No connection is opened: the TLS files do not matter here.
                let application = try GatewayApplication.build(from: configuration, loadingTLS: false)
                server = try await GatewayServer(application: application, logger: logger)
            } catch {
                FileHandleOutput.standardError("dbaudit-gateway: cannot explain: auth.jwt: \(error)\n")
                throw ExitCode(1)
            }
            let report: ExplainReport
            do {
                report = try await server.explain(
                    ExplainRequest(
                        method: self.method,
                        target: self.path,
                        headers: headers,
                        clientAddress: self.clientAddress
                    )
                )
            } catch {
                await server.drain()
                FileHandleOutput.standardError("dbaudit-gateway: cannot explain: \(error)\n")
                throw ExitCode(1)
            }
            await server.drain()
            print(self.json ? report.json : report.text, terminator: "")
            if !report.allowed { throw ExitCode(1) }
        }

        /// The credential from the one source given; never echoed.
        private func credential() throws -> String? {
            if let token = self.token { return token }
            let text: String
            if let tokenFile = self.tokenFile {
                guard let data = FileManager.default.contents(atPath: tokenFile), data.count <= 16 * 1024 else {
                    throw UsageFailure("cannot read --token-file \(tokenFile) (missing, unreadable or over 16 KiB)")
                }
                text = String(decoding: data, as: UTF8.self)
            } else if self.tokenStdin {
                let data = FileHandle.standardInput.readDataToEndOfFile()
                guard data.count <= 16 * 1024 else { throw UsageFailure("the token on standard input is over 16 KiB") }
                text = String(decoding: data, as: UTF8.self)
            } else {
                return nil
            }
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !trimmed.isEmpty else { throw UsageFailure("the token is empty") }
            return trimmed
        }
    }
}

/// A usage problem found after parsing: reported on stderr with exit status 2.
struct UsageFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
