import ArgumentParser
import Foundation
import GatewayConfig
import GatewayCore
import GatewayServer
import GatewayStore

extension GatewayCommand {
    /// `users add|disable`: people who log in at `/v1/auth/login`, in the Redis store.
    struct Users: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add, list, disable and enable users (a new user's password is read from standard input).",
            subcommands: [Add.self, List.self, Disable.self, Enable.self]
        )

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Create a user; the password is the first line of standard input (never an argument)."
            )

            @OptionGroup var options: StoreOptions
            @Option(
                name: .long,
                help: "Login e-mail address: a plain ASCII address such as ops@example.com (stored lower-cased)."
            )
            var email: String
            @Option(name: .long, help: "Comma-separated scopes, e.g. read:databases,read:logs.") var scopes: String
            @Flag(name: .long, help: "Print JSON.") var json = false

            func run() async throws {
                guard let line = readLine(strippingNewline: true), !line.isEmpty else {
                    FileHandleOutput.standardError(
                        "dbaudit-gateway: write the password on standard input (e.g. from a file or a prompt)\n"
                    )
                    throw ExitCode(1)
                }
                let management = try self.options.open(UserManagement.self)
                let scopes = self.scopes.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                let user = try await performOrExit(management) { management in
                    try await management.add(
                        email: self.email,
                        scopes: scopes,
                        password: line,
                        now: GatewayClock.system.unixSeconds()
                    )
                }
                if self.json {
                    print(Users.json(user, full: false))
                } else {
                    print("Created user \(user.id) <\(user.email)> with scopes \(user.scopes.joined(separator: " ")).")
                }
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract:
                    "List every user: id, e-mail (login name), enabled or disabled, created, the provider and address of a user signed in through [[sso.providers]], scopes (never a password hash)."
            )

            @OptionGroup var options: StoreOptions
            @Flag(name: .long, help: "Print a JSON array.") var json = false

            func run() async throws {
                let (users, unreadable) = try await performOrExit(self.options.open(UserManagement.self)) {
                    try await $0.list()
                }
                if self.json {
                    print("[" + users.map { Users.json($0, full: true) }.joined(separator: ",") + "]")
                } else if users.isEmpty {
                    print(
                        "No users. Add one with: dbaudit-gateway users add --config PATH --email ADDRESS --scopes a,b"
                    )
                } else {
                    for user in users {
                        let created = Date(timeIntervalSince1970: TimeInterval(user.createdAt)).ISO8601Format()
                        // A provider user: its login name (for `users disable`), then provider and address.
                        let provider = user.provider.map { "  provider \($0) <\(user.contactEmail ?? "")>" } ?? ""
                        print(
                            "\(user.id)  \(user.email)  \(user.disabled ? "disabled" : "enabled")  created \(created)\(provider)  scopes \(user.scopes.joined(separator: " "))"
                        )
                    }
                }
                if unreadable > 0 {
                    FileHandleOutput.standardError(
                        "dbaudit-gateway: \(unreadable) user record(s) could not be read and were skipped\n"
                    )
                }
            }

        }

        struct Disable: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract:
                    "Disable a user: logins and refreshes are refused, and access tokens already issued are revoked everywhere."
            )

            @OptionGroup var options: StoreOptions
            @Option(name: .long, help: "Login e-mail address.") var email: String

            func run() async throws { try await Users.set(self.options, email: self.email, disabled: true) }
        }

        struct Enable: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Enable a disabled user again.")

            @OptionGroup var options: StoreOptions
            @Option(name: .long, help: "Login e-mail address.") var email: String

            func run() async throws { try await Users.set(self.options, email: self.email, disabled: false) }
        }

        /// A user as JSON for scripts: id, e-mail, scopes, and with `full` its state and
        /// creation time. Every value goes through the JSON writer, so no input adds members;
        /// the password hash is never written.
        static func json(_ user: UserRecord, full: Bool) -> String {
            var json = "{\"id\":"
            JSONText.appendQuoted(user.id, to: &json)
            json += ",\"email\":"
            JSONText.appendQuoted(user.email, to: &json)
            json += ",\"scopes\":[" + user.scopes.map(JSONText.quoted).joined(separator: ",") + "]"
            if full {
                json += ",\"disabled\":\(user.disabled),\"created_at\":\(user.createdAt)"
                if let provider = user.provider {
                    json += ",\"provider\":"
                    JSONText.appendQuoted(provider, to: &json)
                    json += ",\"contact_email\":"
                    JSONText.appendQuoted(user.contactEmail ?? "", to: &json)
                }
            }
            return json + "}"
        }

        static func set(_ options: StoreOptions, email: String, disabled: Bool) async throws {
            let (user, revoked) = try await performOrExit(options.open(UserManagement.self)) {
                try await $0.setDisabled(email: email, disabled: disabled, now: GatewayClock.system.unixSeconds())
            }
            print("User \(user.id) <\(user.email)> is now \(disabled ? "disabled" : "enabled").")
            if disabled {
                print("Every access token issued to the user so far is refused on every instance.")
                print("Revoked \(revoked) API key\(revoked == 1 ? "" : "s") the user had created.")
            }
        }
    }
}
