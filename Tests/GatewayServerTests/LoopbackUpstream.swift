import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A real HTTP/1.1 upstream on 127.0.0.1 for the server tests. Every request is answered
/// `200` with `<name> <path>` as its body, except paths under `/hold/` (answered when the
/// test calls `releaseHeld()`) and under `/silent/` (never answered). It records every
/// path it received. Its handlers run on their channels' loops; the records sit behind a
/// lock, so any task may read them.
final class LoopbackUpstream: Sendable {
    let name: String
    private let channel: any Channel
    private let state: NIOLockedValueBox<State>

    struct State {
        var paths: [String] = []
        var held: [@Sendable () -> Void] = []
    }

    private init(name: String, channel: any Channel, state: NIOLockedValueBox<State>) {
        self.name = name
        self.channel = channel
        self.state = state
    }

    static func start(name: String, group: any EventLoopGroup) async throws -> LoopbackUpstream {
        let state = NIOLockedValueBox(State())
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(name: name, state: state))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return LoopbackUpstream(name: name, channel: channel, state: state)
    }

    var port: Int { self.channel.localAddress?.port ?? 0 }
    var paths: [String] { self.state.withLockedValue { $0.paths } }

    /// Answers every request held so far.
    func releaseHeld() {
        let held = self.state.withLockedValue { state in
            defer { state.held = [] }
            return state.held
        }
        for answer in held { answer() }
    }

    func stop() async {
        try? await self.channel.close()
    }

    /// Answers one upstream connection's requests. Its channel's loop only.
    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        private let name: String
        private let state: NIOLockedValueBox<State>
        private var path = ""

        init(name: String, state: NIOLockedValueBox<State>) {
            self.name = name
            self.state = state
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch self.unwrapInboundIn(data) {
            case .head(let head):
                self.path = head.uri
            case .body:
                break
            case .end:
                let path = self.path
                let body = "\(self.name) \(path)"
                let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                let answer: @Sendable () -> Void = {
                    bound.eventLoop.execute {
                        let (handler, context) = bound.value
                        handler.respond(body, context: context)
                    }
                }
                self.state.withLockedValue { state in
                    state.paths.append(path)
                    if path.hasPrefix("/hold/") { state.held.append(answer) }
                }
                if !path.hasPrefix("/hold/") && !path.hasPrefix("/silent/") { answer() }
            }
        }

        private func respond(_ body: String, context: ChannelHandlerContext) {
            var headers = HTTPHeaders()
            headers.add(name: "Content-Length", value: String(body.utf8.count))
            context.write(
                self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                promise: nil
            )
            context.write(
                self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))),
                promise: nil
            )
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}
