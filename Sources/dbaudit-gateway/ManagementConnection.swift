import GatewayConfig
import GatewayCore
import GatewayRedis
import NIOCore

/// One short-lived Redis connection for a command-line operation (`keys`, `users`,
/// `clients`): opened on one loop of the command's group, handed to `body`, closed when the
/// future `body` returns completes, whatever its outcome. The connection lives on that loop
/// only.
enum ManagementConnection {
    /// The least time a command-line operation waits to connect and for each reply.
    /// `[redis]`'s timeouts are tuned for the request path, where a slow Redis must turn into
    /// a quick 503; an operator's one-off command would rather wait a moment than fail
    /// because Redis was busy for half a second.
    static let minimumTimeout: Duration = .seconds(5)

    /// What a command prints when Redis did not answer: one text for `keys`, `users` and
    /// `clients`, naming every `[redis]` setting that decides where and how it connects.
    static let unreachable =
        "Redis cannot be reached; check [redis] (url, sentinels and master_name, or cluster_nodes; tls and ca_file; "
        + "username and password)"

    static func run<T: Sendable>(
        _ configured: RedisSettings,
        on group: any EventLoopGroup,
        _ body: @escaping @Sendable (RedisClient, any EventLoop) -> EventLoopFuture<T>
    ) async throws -> T {
        var patient = configured
        patient.connectTimeout = max(patient.connectTimeout, Self.minimumTimeout)
        patient.commandTimeout = max(patient.commandTimeout, Self.minimumTimeout)
        let settings = patient
        let loop = group.next()
        return try await loop.flatSubmit {
            let client = RedisClient(
                eventLoop: loop,
                settings: settings,
                connector: RedisConnectors.posix,
                clock: .system
            )
            return body(client, loop).assumeIsolated().always { _ in client.close() }.nonisolated()
        }.get()
    }
}
