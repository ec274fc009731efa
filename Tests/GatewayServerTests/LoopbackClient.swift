import NIOCore
import NIOHTTP1
import NIOPosix

/// One client connection to the gateway on 127.0.0.1, sending requests one at a time and
/// keeping the connection open between them. Its handler runs on the channel's loop; the
/// futures it returns may be awaited from any task.
final class LoopbackClient: Sendable {
    struct Response: Sendable, Equatable {
        var status: Int
        var body: String
    }

    /// The connection closed before a response arrived.
    struct Closed: Error {}

    private let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    static func connect(port: Int, group: any EventLoopGroup) async throws -> LoopbackClient {
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(Collector())
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .get()
        return LoopbackClient(channel: channel)
    }

    /// Sends `GET path` and returns its response; fails with `Closed` when the connection
    /// closes first.
    func get(_ path: String) async throws -> Response {
        let channel = self.channel
        let promise = channel.eventLoop.makePromise(of: Response.self)
        channel.eventLoop.execute {
            guard channel.isActive, let collector = try? channel.pipeline.syncOperations.handler(type: Collector.self)
            else {
                promise.fail(Closed())
                return
            }
            collector.expect(promise)
            var headers = HTTPHeaders()
            headers.add(name: "Host", value: "gateway.test")
            let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        }
        return try await promise.futureResult.get()
    }

    /// Completes when the connection is closed (by either side).
    func closed() async {
        try? await self.channel.closeFuture.get()
    }

    func close() async {
        try? await self.channel.close()
    }

    /// Collects the response of the request in flight. Its channel's loop only.
    private final class Collector: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart

        private var promise: EventLoopPromise<Response>?
        private var status = 0
        private var body = ""

        /// The next response completes `promise`.
        func expect(_ promise: EventLoopPromise<Response>) {
            self.promise = promise
            self.status = 0
            self.body = ""
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch self.unwrapInboundIn(data) {
            case .head(let head):
                self.status = Int(head.status.code)
            case .body(let buffer):
                self.body += String(buffer: buffer)
            case .end:
                let response = Response(status: self.status, body: self.body)
                let promise = self.promise
                self.promise = nil
                promise?.succeed(response)
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.fail()
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }

        private func fail() {
            let promise = self.promise
            self.promise = nil
            promise?.fail(Closed())
        }
    }
}
