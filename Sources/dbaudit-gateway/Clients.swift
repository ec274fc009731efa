import ArgumentParser
import Foundation
import GatewayConfig
import GatewayCore
import GatewayServer
import GatewayStore

extension GatewayCommand {
    /// `clients add|list|remove|rotate-secret`: OAuth clients registered in Redis (clients
    /// declared in `[[oauth.clients]]` are listed too, but managed in the file).
    struct Clients: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register, list, remove OAuth clients and rotate their secrets.",
            discussion: """
                A confidential client's secret is printed once, at registration or rotation, and kept \
                only as its hash (peppered like API keys). Public clients (browser and native apps) have \
                no secret and must use PKCE. Clients declared in [[oauth.clients]] win over registered \
                ones and cannot be changed here.
                """,
            subcommands: [Add.self, List.self, Remove.self, RotateSecret.self]
        )

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Register a client; prints its id and, for a confidential client, its secret (once)."
            )

            @OptionGroup var options: StoreOptions
            @Option(name: .long, help: "Name shown on the consent page.") var name: String
            @Option(
                name: .customLong("redirect-uri"),
                help:
                    "A redirect URI (repeatable): https://..., or http://127.0.0.1/... or http://[::1]/... (any port) for native apps."
            )
            var redirectURIs: [String] = []
            @Option(
                name: .customLong("grant-types"),
                help: "Comma-separated: authorization_code, refresh_token, client_credentials."
            )
            var grantTypes: String = "authorization_code,refresh_token"
            @Option(name: .long, help: "Comma-separated scopes the client may ask for, e.g. read:databases,read:logs.")
            var scopes: String
            @Flag(name: .long, help: "A public client (no secret; PKCE required; no client_credentials).")
            var `public` = false
            @Option(name: .customLong("token-format"), help: "Access tokens as jwt (default) or opaque.")
            var tokenFormat: String = "jwt"
            @Flag(
                name: .customLong("resource-server"),
                help: "May introspect access tokens issued to any client (confidential clients only)."
            )
            var resourceServer = false
            @Flag(name: .long, help: "Print JSON.") var json = false

            func run() async throws {
                let (client, secret) = try await performOrExit(self.options.open(ClientManagement.self)) {
                    try await $0.add(
                        name: self.name,
                        redirectURIs: self.redirectURIs,
                        grantTypes: Clients.list(self.grantTypes),
                        scopes: Clients.list(self.scopes),
                        isPublic: self.public,
                        tokenFormat: self.tokenFormat,
                        isResourceServer: self.resourceServer,
                        now: GatewayClock.system.unixSeconds()
                    )
                }
                if self.json {
                    print(Clients.json(client, secret: secret))
                } else {
                    print(
                        "Registered \(client.isPublic ? "public" : "confidential") client \(client.id) (\(client.name))."
                    )
                    if let secret {
                        print("client_secret: \(secret)")
                        print("Store the secret now: it is not shown again (rotate-secret makes a new one).")
                    }
                }
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "List every client (declared in the file and registered)."
            )

            @OptionGroup var options: StoreOptions
            @Flag(name: .long, help: "Print JSON (an array).") var json = false

            func run() async throws {
                let clients = try await performOrExit(self.options.open(ClientManagement.self)) { try await $0.list() }
                if self.json {
                    print("[" + clients.map { Clients.json($0, secret: nil) }.joined(separator: ",") + "]")
                } else {
                    for client in clients {
                        let grants = client.grantTypes.sorted().map(\.rawValue).joined(separator: ",")
                        print(
                            "\(client.id)\t\(client.source.rawValue)\t\(client.isPublic ? "public" : "confidential")\t\(grants)\t\(client.scopes.joined(separator: " "))\t\(client.name)"
                        )
                    }
                }
            }
        }

        struct Remove: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract:
                    "Remove a registered client: its secret and refresh tokens stop working at once (access tokens run out)."
            )

            @OptionGroup var options: StoreOptions
            @Argument(help: "The client id.") var id: String

            func run() async throws {
                try await performOrExit(self.options.open(ClientManagement.self)) { try await $0.remove(id: self.id) }
                print("Removed client \(self.id).")
            }
        }

        struct RotateSecret: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "rotate-secret",
                abstract:
                    "Give a registered confidential client a new secret (printed once); the old one stops working."
            )

            @OptionGroup var options: StoreOptions
            @Argument(help: "The client id.") var id: String
            @Flag(name: .long, help: "Print JSON.") var json = false

            func run() async throws {
                let (client, secret) = try await performOrExit(self.options.open(ClientManagement.self)) {
                    try await $0.rotateSecret(id: self.id)
                }
                if self.json {
                    print(Clients.json(client, secret: secret))
                } else {
                    print("New secret for client \(client.id):")
                    print("client_secret: \(secret)")
                }
            }
        }

        static func list(_ text: String) -> [String] {
            text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }

        /// Every value through the JSON writer: scripts parse this, and no input may add members.
        static func json(_ client: OAuthClient, secret: String?) -> String {
            var json = "{\"client_id\":" + JSONText.quoted(client.id) + ",\"name\":" + JSONText.quoted(client.name)
            json += ",\"public\":\(client.isPublic),\"source\":" + JSONText.quoted(client.source.rawValue)
            json += ",\"redirect_uris\":[" + client.redirectURIs.map(JSONText.quoted).joined(separator: ",") + "]"
            json +=
                ",\"grant_types\":["
                + client.grantTypes.sorted().map { JSONText.quoted($0.rawValue) }.joined(separator: ",") + "]"
            json += ",\"scopes\":[" + client.scopes.map(JSONText.quoted).joined(separator: ",") + "]"
            json += ",\"token_format\":" + JSONText.quoted(client.tokenFormat.rawValue)
            json += ",\"resource_server\":\(client.isResourceServer)"
            if let secret { json += ",\"client_secret\":" + JSONText.quoted(secret) }
            return json + "}"
        }
    }
}
