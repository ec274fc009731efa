import Foundation
package import GatewayConfig
package import GatewayProxy
package import NIOCore
import NIOHTTP1
import NIOPosix

/// The operators' listener (`[admin] listen`, loopback by default): `/healthz` (the
/// process answers), `/readyz` (configuration loaded, Redis and upstream reachable; 503
/// naming what is not), `/metrics` (Prometheus text format) and `POST /explain` (only
/// with a token). Optional bearer token.
/// Its connections live on the server's event loops; the probes it runs are futures there.
package final class AdminServer: Sendable {
    /// What the admin endpoints ask the gateway (the server supplies them).
    package struct Sources: Sendable {
        var readiness: @Sendable () async -> (ready: Bool, checks: [(String, String)])
        var metrics: @Sendable () async -> AdminMetrics
        /// `POST /explain`: the report, or nil when the gateway cannot explain (stopping).
        var explain: @Sendable (ExplainRequest) async -> ExplainReport?

        package init(
            readiness: @escaping @Sendable () async -> (ready: Bool, checks: [(String, String)]),
            metrics: @escaping @Sendable () async -> AdminMetrics,
            explain: @escaping @Sendable (ExplainRequest) async -> ExplainReport?
        ) {
            self.readiness = readiness
            self.metrics = metrics
            self.explain = explain
        }
    }

    private let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    package static func start(
        group: any EventLoopGroup,
        settings: AdminSettings,
        sources: Sources
    ) async throws -> AdminServer {
        let token = settings.token.map { Array($0.value.utf8) }
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // An upgraded gateway starts beside the old one (docs/operations.md, Upgrading):
            // both hold the admin port until the old one has drained.
            .serverChannelOption(
                ChannelOptions.Types.SocketOption(
                    level: SocketOptionLevel(SOL_SOCKET),
                    name: SocketOptionName(SO_REUSEPORT)
                ),
                value: 1
            )
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    var limits = NIOHTTPDecoderLimitConfiguration()
                    limits.maxHeaderListSize = 16 * 1024
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withPipeliningAssistance: true,
                        withErrorHandling: true,
                        withOutboundHeaderValidation: true,
                        withEncoderConfiguration: HTTPResponseEncoder.Configuration(),
                        withDecoderLimitConfiguration: limits
                    )
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(token: token, sources: sources))
                }
            }
            .bind(host: settings.listen.host, port: settings.listen.port)
            .get()
        return AdminServer(channel: channel)
    }

    package var port: Int { self.channel.localAddress?.port ?? 0 }

    package func stop() async {
        try? await self.channel.close()
    }
}
