import GatewayConfig
import GatewayCore
import GatewayRedis
import NIOCore

/// One short-lived Redis connection for a command-line operation (`keys`, `users`,
/// `clients`): opened on one loop of the command's group, handed to `body`, closed when the
/// future `body` returns completes, whatever its outcome. The connection lives on that loop
/// only.
enum ManagementConnection {
    static func run<T: Sendable>(
        _ settings: RedisSettings,
        on group: any EventLoopGroup,
        _ body: @escaping @Sendable (RedisClient, any EventLoop) -> EventLoopFuture<T>
    ) async throws -> T {
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
