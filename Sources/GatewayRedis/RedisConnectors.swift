import GatewayConfig
import NIOCore
import NIOPosix

/// The production `RedisConnector`: TCP (Nagle off) or a Unix socket, with the
/// configured connect timeout.
package enum RedisConnectors {
    package static let posix: RedisConnector = { eventLoop, endpoint, connectTimeout, initializer in
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelInitializer(initializer)
        switch endpoint {
        case .tcp(let host, let port):
            return
                bootstrap
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelOption(.socketOption(.so_keepalive), value: 1)
                .connect(host: host, port: port)
        case .unix(let path):
            return bootstrap.connect(unixDomainSocketPath: path)
        }
    }
}
