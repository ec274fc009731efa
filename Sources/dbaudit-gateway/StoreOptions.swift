import ArgumentParser
import GatewayConfig

/// `--config PATH` of the commands that act on the stores a configuration names (`keys`,
/// `users`, `clients`), so they see what the running gateways see. Parsed once per command
/// run, on the main thread.
struct StoreOptions: ParsableArguments {
    @Option(
        name: .long,
        help: "Path of gateway.conf (its [redis], and the pepper, [auth.jwt] or [oauth] settings the command uses)."
    )
    var config: String

    /// The command's access to the stores the file names, or the problem on stderr and exit
    /// code 1.
    func open<Management: ManagementSession>(_: Management.Type) throws -> Management {
        try managementOrExit(self.config, Management.init(configuration:))
    }
}
