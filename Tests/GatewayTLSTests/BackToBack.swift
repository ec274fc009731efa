import NIOCore
import NIOEmbedded

@testable import GatewayTLS

/// Records what reaches the end of a test pipeline: plaintext, TLS events, errors, and
/// whether the channel went inactive. One per EmbeddedChannel; the test's thread only.
final class Recorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    var received = ByteBuffer()
    var handshakes: [TLSHandshakeInfo] = []
    var errors: [TLSError] = []
    var otherErrors: [any Error] = []
    var inactive = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        self.received.writeBuffer(&buffer)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted(let info) = event as? TLSUserEvent {
            self.handshakes.append(info)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? TLSError {
            self.errors.append(error)
        } else {
            self.otherErrors.append(error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.inactive = true
    }

    var errorKinds: [TLSError.Kind] { self.errors.map(\.kind) }
}

/// A TLS client and server on two EmbeddedChannels sharing one EmbeddedEventLoop, wired
/// together by `pump()`, which moves ciphertext both ways until neither side has more.
/// No sockets; the test's thread only.
final class BackToBack {
    let loop = EmbeddedEventLoop()
    let client: EmbeddedChannel
    let server: EmbeddedChannel
    let clientHandler: TLSHandler
    let serverHandler: TLSHandler
    let clientRecorder = Recorder()
    let serverRecorder = Recorder()
    /// Bytes that went from client to server (to inspect or drop).
    private(set) var clientToServerBytes = 0

    init(
        server serverContext: TLSContext,
        client clientContext: TLSContext,
        serverName: String? = "localhost",
        handshakeTimeout: TimeAmount = .seconds(10),
        shutdownTimeout: TimeAmount = .seconds(3)
    ) throws {
        self.client = EmbeddedChannel(loop: self.loop)
        self.server = EmbeddedChannel(loop: self.loop)
        self.clientHandler = try TLSHandler(
            context: clientContext,
            mode: .client(serverName: serverName),
            handshakeTimeout: handshakeTimeout,
            shutdownTimeout: shutdownTimeout
        )
        self.serverHandler = try TLSHandler(
            context: serverContext,
            mode: .server,
            handshakeTimeout: handshakeTimeout,
            shutdownTimeout: shutdownTimeout
        )
        try self.client.pipeline.syncOperations.addHandler(self.clientHandler)
        try self.client.pipeline.syncOperations.addHandler(self.clientRecorder)
        try self.server.pipeline.syncOperations.addHandler(self.serverHandler)
        try self.server.pipeline.syncOperations.addHandler(self.serverRecorder)
    }

    /// A channel and its pipeline hold each other until the channel closes: close both
    /// (whatever the test left open) so they are freed with the pair (LeakSanitizer). Never
    /// waits: the TLS handlers' graceful close ends on a close_notify moved by `pump()` or on
    /// their shutdown timer, which the embedded loop fires when its time is advanced.
    deinit {
        self.client.close(promise: nil)
        self.server.close(promise: nil)
        _ = try? self.pump()
        self.loop.advanceTime(by: .hours(1))
        _ = try? self.pump()
    }

    /// Makes both channels active (the client sends its ClientHello).
    func activate() throws {
        try self.server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try self.client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
    }

    /// Moves ciphertext both ways until both sides are quiet. Returns the rounds taken.
    @discardableResult
    func pump(maxRounds: Int = 10_000) throws -> Int {
        for round in 0..<maxRounds {
            var moved = false
            while let bytes = try self.client.readOutbound(as: ByteBuffer.self) {
                moved = true
                self.clientToServerBytes += bytes.readableBytes
                if self.server.isActive { try self.server.writeInbound(bytes) }
            }
            while let bytes = try self.server.readOutbound(as: ByteBuffer.self) {
                moved = true
                if self.client.isActive { try self.client.writeInbound(bytes) }
            }
            self.loop.run()
            if !moved { return round }
        }
        return maxRounds
    }

    /// Activates and pumps until both handshakes are done.
    func handshake() throws {
        try self.activate()
        try self.pump()
    }

    /// Writes plaintext on `channel` (through the pipeline, as an application would).
    @discardableResult
    func write(_ channel: EmbeddedChannel, _ bytes: [UInt8], flush: Bool = true) -> EventLoopFuture<Void> {
        let buffer = channel.allocator.buffer(bytes: bytes)
        let future = channel.write(buffer)
        if flush { channel.flush() }
        return future
    }
}
