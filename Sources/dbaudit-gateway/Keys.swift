import ArgumentParser
import Foundation
import GatewayAuth
import GatewayConfig
import GatewayCore
import GatewayServer
import GatewayStore

extension GatewayCommand {
    /// `keys create|list|revoke`: API keys in the Redis store of a configuration.
    struct Keys: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create, list and revoke API keys.",
            subcommands: [Create.self, List.self, Revoke.self]
        )

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Create a key and print it once.")

            @OptionGroup var options: StoreOptions
            @Option(name: .long, help: "A descriptive name.") var name: String
            @Option(name: .long, help: "Comma-separated scopes, e.g. read:databases,read:logs.") var scopes: String
            @Option(name: .long, help: "Lifetime such as 90d, 12h, 3600 (seconds); none by default.") var expiresIn:
                String?
            @Flag(name: .long, help: "Make a dbaudit_test_ key.") var test = false
            @Option(name: .long, help: "Owner recorded with the key and sent upstream as the subject.") var owner =
                "operator"
            @Option(name: .long, help: "A [[rate_limits]] policy for this key (its tier), applied on every route.")
            var rateLimit: String?
            @Flag(name: .long, help: "Print JSON.") var json = false

            func run() async throws {
                var lifetime: Int64?
                if let expiresIn = self.expiresIn {
                    guard let parsed = APIKeyService.parseLifetime(expiresIn) else {
                        FileHandleOutput.standardError(
                            "dbaudit-gateway: --expires-in must look like 90d, 12h, 30m or seconds\n"
                        )
                        throw ExitCode(1)
                    }
                    lifetime = parsed
                }
                let management = try self.options.open(KeyManagement.self)
                let scopes = self.scopes.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                let created = try await performOrExit(management) { management in
                    try await management.create(
                        name: self.name,
                        scopes: scopes,
                        expiresIn: lifetime,
                        test: self.test,
                        owner: self.owner,
                        now: GatewayClock.system.unixSeconds(),
                        rateLimit: self.rateLimit
                    )
                }
                if self.json {
                    var text = APIKeyEndpoints.recordJSON(created.record)
                    text.removeLast()
                    print(text + ",\"key\":" + JSONText.quoted(created.key) + "}")
                } else {
                    let record = created.record
                    print(
                        "Created API key \(record.id) (\(record.name); scopes \(record.scopes.joined(separator: " ")); expires \(record.expiresAt.map(Self.date) ?? "never"))."
                    )
                    print("Store it now, it is not shown again:")
                    print(created.key)
                }
            }

            static func date(_ seconds: Int64) -> String {
                ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List keys (never the secrets).")

            @OptionGroup var options: StoreOptions
            @Flag(name: .long, help: "Print JSON.") var json = false

            func run() async throws {
                let records = try await performOrExit(self.options.open(KeyManagement.self)) { try await $0.list() }
                if self.json {
                    print("[" + records.map(APIKeyEndpoints.recordJSON).joined(separator: ",") + "]")
                    return
                }
                print(
                    "ID                    NAME                 SCOPES                              LAST4  CREATED               EXPIRES               LAST USED             STATE"
                )
                for record in records {
                    let fields = [
                        record.id.padding(toLength: 21, withPad: " ", startingAt: 0),
                        String(record.name.prefix(20)).padding(toLength: 20, withPad: " ", startingAt: 0),
                        String(record.scopes.joined(separator: ",").prefix(35)).padding(
                            toLength: 35,
                            withPad: " ",
                            startingAt: 0
                        ),
                        record.last4.padding(toLength: 6, withPad: " ", startingAt: 0),
                        Create.date(record.createdAt).padding(toLength: 21, withPad: " ", startingAt: 0),
                        (record.expiresAt.map(Create.date) ?? "never").padding(
                            toLength: 21,
                            withPad: " ",
                            startingAt: 0
                        ),
                        (record.lastUsedAt.map(Create.date) ?? "never").padding(
                            toLength: 21,
                            withPad: " ",
                            startingAt: 0
                        ),
                        record.revoked ? "revoked" : "active",
                    ]
                    print(fields.joined(separator: " "))
                }
            }
        }

        struct Revoke: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Revoke a key on every gateway instance.")

            @OptionGroup var options: StoreOptions
            @Argument(help: "The key id (key_...).") var id: String

            func run() async throws {
                guard
                    let record = try await performOrExit(
                        self.options.open(KeyManagement.self),
                        { try await $0.revoke(id: self.id) }
                    )
                else {
                    FileHandleOutput.standardError("dbaudit-gateway: no API key has id \(self.id)\n")
                    throw ExitCode(1)
                }
                print("Revoked \(record.id) (\(record.name)).")
            }
        }
    }
}
