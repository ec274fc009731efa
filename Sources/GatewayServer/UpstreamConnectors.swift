import GatewayProxy
import NIOCore
import NIOPosix

/// The production `UpstreamConnector`: a TCP connection from `ClientBootstrap` on the
/// requesting event loop, with Nagle off and the configured connect timeout.
enum UpstreamConnectors {
    static let tcp: UpstreamConnector = { eventLoop, host, port, connectTimeout, initializer in
        ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer(initializer)
            .connect(host: host, port: port)
    }
}
