import GatewayCore
import NIOCore
import NIOHTTP1
import NIOPosix

/// The demo's built-in upstream: an HTTP/1.1 server on loopback that answers every
/// request with JSON describing what it received (method, path, headers, body size), so
/// a user sees exactly what the gateway forwards.
final class EchoUpstream: Sendable {
    private let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    /// Starts on `127.0.0.1:port` (0 picks a free port).
    static func start(group: any EventLoopGroup, port: Int = 0) async throws -> EchoUpstream {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(EchoHandler())
                }
            }
            .bind(host: "127.0.0.1", port: port)
            .get()
        return EchoUpstream(channel: channel)
    }

    var port: Int { self.channel.localAddress?.port ?? 0 }

    func stop() async {
        try? await self.channel.close()
    }
}

/// Answers one request at a time with its description. One per connection; its loop only.
private final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private var head: HTTPRequestHead?
    private var bodyBytes = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.bodyBytes = 0
        case .body(let buffer):
            self.bodyBytes += buffer.readableBytes
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            var json = "{\"upstream\":\"dbaudit-gateway demo echo\",\"method\":"
            JSONText.appendQuoted(head.method.rawValue, to: &json)
            json += ",\"path\":"
            JSONText.appendQuoted(head.uri, to: &json)
            json += ",\"body_bytes\":\(self.bodyBytes),\"headers\":{"
            for (index, (name, value)) in head.headers.enumerated() {
                if index > 0 { json += "," }
                JSONText.appendQuoted(name.lowercased(), to: &json)
                json += ":"
                JSONText.appendQuoted(value, to: &json)
            }
            json += "}}\n"
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(json.utf8.count))
            context.write(
                self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                promise: nil
            )
            context.write(
                self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: json)))),
                promise: nil
            )
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}
