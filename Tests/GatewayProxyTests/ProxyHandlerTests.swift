import GatewayAuth
import GatewayConfig
import GatewayCore
import GatewayCrypto
import GatewayProxy
import GatewayRateLimit
import GatewayStore
import GatewayTestSupport
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

// MARK: - raw HTTP parsing for assertions

/// One HTTP/1.x message as it appeared on the wire.
struct WireMessage: CustomStringConvertible {
    var startLine: String
    var headers: [(name: String, value: String)]
    var body: [UInt8]
    var chunked: Bool

    var bodyText: String { String(decoding: self.body, as: UTF8.self) }

    func values(_ name: String) -> [String] {
        self.headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }

    func has(_ name: String) -> Bool { !self.values(name).isEmpty }

    var statusCode: Int? {
        let parts = self.startLine.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/") else { return nil }
        return Int(parts[1])
    }

    var description: String {
        ([self.startLine] + self.headers.map { "\($0.name): \($0.value)" }).joined(separator: "\n") + "\n\n"
            + self.bodyText
    }
}

enum WireParseError: Error { case incomplete(String) }

/// Splits `bytes` into HTTP messages. Bodies are delimited by Content-Length or chunked
/// framing; a response with neither runs to the end of the bytes (close-delimited), a
/// request with neither has no body.
func parseMessages(_ bytes: [UInt8], responses: Bool) throws -> [WireMessage] {
    var messages: [WireMessage] = []
    var index = 0
    let crlf: [UInt8] = [13, 10]

    func readLine() throws -> String {
        var end = index
        while end + 1 < bytes.count, !(bytes[end] == 13 && bytes[end + 1] == 10) { end += 1 }
        guard end + 1 < bytes.count else { throw WireParseError.incomplete("line at \(index)") }
        let line = String(decoding: bytes[index..<end], as: UTF8.self)
        index = end + 2
        return line
    }

    while index < bytes.count {
        let startLine = try readLine()
        var headers: [(name: String, value: String)] = []
        while true {
            let line = try readLine()
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: ":") else { throw WireParseError.incomplete("header \(line)") }
            let value = line[line.index(after: colon)...].trimmingCharacters(in: " \t")
            headers.append((String(line[..<colon]), value))
        }
        var message = WireMessage(startLine: startLine, headers: headers, body: [], chunked: false)
        let status = message.statusCode
        let bodyless = status.map { $0 < 200 || $0 == 204 || $0 == 304 } ?? false
        if message.values("transfer-encoding").contains(where: { $0.lowercased().contains("chunked") }) {
            message.chunked = true
            while true {
                let sizeLine = try readLine()
                guard let size = Int(sizeLine.split(separator: ";")[0], radix: 16) else {
                    throw WireParseError.incomplete("chunk size \(sizeLine)")
                }
                if size == 0 {
                    while try !readLine().isEmpty {}
                    break
                }
                guard index + size + 2 <= bytes.count else { throw WireParseError.incomplete("chunk") }
                message.body += bytes[index..<(index + size)]
                index += size
                guard Array(bytes[index..<(index + 2)]) == crlf else { throw WireParseError.incomplete("chunk end") }
                index += 2
            }
        } else if let length = message.values("content-length").first.flatMap({ Int($0) }) {
            guard index + length <= bytes.count else { throw WireParseError.incomplete("body") }
            message.body = Array(bytes[index..<(index + length)])
            index += length
        } else if responses, !bodyless {
            message.body = Array(bytes[index...])
            index = bytes.count
        }
        messages.append(message)
    }
    return messages
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var slice = self[...]
        while let first = slice.first, set.contains(first) { slice = slice.dropFirst() }
        while let last = slice.last, set.contains(last) { slice = slice.dropLast() }
        return String(slice)
    }
}

/// The members of a gateway JSON error body, found without a JSON library.
func jsonMember(_ name: String, in body: String) -> String? {
    guard let range = body.range(of: "\"\(name)\":\"") else { return nil }
    let rest = body[range.upperBound...]
    guard let end = rest.firstIndex(of: "\"") else { return nil }
    return String(rest[..<end])
}

func isMintedID(_ id: String?) -> Bool {
    guard let id else { return false }
    return id.utf8.count == 32 && id.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
}

// MARK: - harness

/// An `UpstreamConnector` that hands out `EmbeddedChannel`s on the test's loop, fails,
/// or leaves the connection pending until the test decides.
final class FakeConnector: @unchecked Sendable {
    enum Mode {
        case connect
        case fail
        case pending
    }

    struct Call {
        var host: String
        var port: Int
        var connectTimeout: TimeAmount
    }

    let loop: EmbeddedEventLoop
    var mode: Mode = .connect
    private(set) var calls: [Call] = []
    private(set) var channels: [EmbeddedChannel] = []
    private(set) var pending:
        [(promise: EventLoopPromise<any Channel>, initializer: @Sendable (any Channel) -> EventLoopFuture<Void>)] = []

    init(loop: EmbeddedEventLoop) {
        self.loop = loop
    }

    var connector: UpstreamConnector {
        { eventLoop, host, port, connectTimeout, initializer in
            self.calls.append(Call(host: host, port: port, connectTimeout: connectTimeout))
            switch self.mode {
            case .fail:
                return eventLoop.makeFailedFuture(ChannelError.connectTimeout(connectTimeout))
            case .pending:
                let promise = eventLoop.makePromise(of: (any Channel).self)
                self.pending.append((promise, initializer))
                return promise.futureResult
            case .connect:
                do {
                    return eventLoop.makeSucceededFuture(try self.makeChannel(port: port, initializer: initializer))
                } catch {
                    return eventLoop.makeFailedFuture(error)
                }
            }
        }
    }

    private func makeChannel(
        port: Int,
        initializer: @Sendable (any Channel) -> EventLoopFuture<Void>
    ) throws -> any Channel {
        let channel = EmbeddedChannel(loop: self.loop)
        self.channels.append(channel)
        try initializer(channel).wait()
        try channel.connect(to: SocketAddress(ipAddress: "10.0.0.2", port: port)).wait()
        return channel
    }

    /// Completes the oldest pending connection attempt.
    func completePending(succeed: Bool) throws {
        let (promise, initializer) = self.pending.removeFirst()
        if succeed {
            promise.succeed(try self.makeChannel(port: 9000, initializer: initializer))
        } else {
            promise.fail(ChannelError.connectTimeout(.seconds(2)))
        }
    }
}

/// A client connection through `ProxyPipeline` on an `EmbeddedEventLoop`.
final class ProxyHarness {
    let loop: EmbeddedEventLoop
    let client: EmbeddedChannel
    let connector: FakeConnector
    let context: LoopContext
    /// What the loop's caches, pool and timings read (its timers run on `loop`).
    let clock = ManualClock()

    /// The credential store every configuration's handlers use, when the test gave one.
    let store: (any CredentialStore)?

    /// - Parameter store: a credential store for the handlers, built on the harness's loop
    ///   (nil: a fresh in-process one per configuration).
    /// - Parameter clientScheme: `https` to stand for a connection of a TLS listener.
    init(
        _ adjust: (inout GatewayConfiguration) -> Void = { _ in },
        store: ((EmbeddedEventLoop) -> any CredentialStore)? = nil,
        clientScheme: String = "http"
    ) throws {
        var configuration = GatewayConfiguration(upstream: UpstreamSettings(host: "backend.internal", port: 9000))
        // These tests are about proxying: one open catch-all route (auth has its own tests).
        configuration.routes = [RouteSettings(method: nil, path: "/**", scopes: [], isPublic: true)]
        adjust(&configuration)
        self.loop = EmbeddedEventLoop()
        self.connector = FakeConnector(loop: self.loop)
        self.store = store?(self.loop)
        let logger = Logger(label: "proxy-tests", factory: { _ in SwiftLogNoOpLogHandler() })
        self.context = LoopContext(
            eventLoop: self.loop,
            configuration: configuration,
            connector: self.connector.connector,
            logger: logger,
            rateLimiter: RateLimiter(
                eventLoop: self.loop,
                local: LocalRateLimiter(group: self.loop, clock: self.clock.clock),
                redis: nil,
                logger: logger
            ),
            handlers: Self.handlers(
                configuration,
                on: self.loop,
                logger: logger,
                clock: self.clock.clock,
                store: self.store
            ),
            clock: self.clock.clock
        )
        self.client = EmbeddedChannel(loop: self.loop)
        self.client.remoteAddress = try SocketAddress(ipAddress: "192.0.2.10", port: 40000)
        try ProxyPipeline.configure(channel: self.client, loop: self.context, clientScheme: clientScheme)
        try self.client.connect(to: SocketAddress(ipAddress: "192.0.2.10", port: 40000)).wait()
    }

    /// The handlers the server would build for `configuration`, over an in-process store.
    static func handlers(
        _ configuration: GatewayConfiguration,
        on loop: any EventLoop,
        logger: Logger,
        clock: GatewayClock,
        localEndpoints: [any LocalEndpoint] = [],
        store: (any CredentialStore)? = nil
    ) -> LoopHandlers {
        let store = store ?? InMemoryCredentialStore(eventLoop: loop, data: InMemoryCredentialData())
        let authenticator = Authenticator(
            eventLoop: loop,
            store: store,
            hmac: HMACSHA256(key: Array("proxy-tests-pepper".utf8)),
            cache: configuration.cache,
            logger: logger,
            clock: clock
        )
        return LoopHandlers(
            authenticator: authenticator,
            apiKeyEndpoints: APIKeyEndpoints(
                service: APIKeyService(store: store, hash: authenticator.hash(apiKey:)),
                clock: clock
            ),
            localEndpoints: localEndpoints
        )
    }

    /// Puts `configuration` in force as a reload would, with `localEndpoints`.
    func apply(_ configuration: GatewayConfiguration, localEndpoints: [any LocalEndpoint] = []) {
        let logger = Logger(label: "t", factory: { _ in SwiftLogNoOpLogHandler() })
        self.context.apply(
            configuration,
            logger: logger,
            tls: self.context.tls,
            handlers: Self.handlers(
                configuration,
                on: self.loop,
                logger: logger,
                clock: self.clock.clock,
                localEndpoints: localEndpoints,
                store: self.store
            )
        )
    }

    var upstreamCalls: Int { self.connector.calls.count }

    func upstream(_ index: Int = 0) -> EmbeddedChannel { self.connector.channels[index] }

    /// Moves the clock and the loop's time together: the idle and header deadlines read the
    /// clock, their sweep runs on the loop.
    func advance(by amount: TimeAmount) {
        self.clock.advance(by: amount)
        self.loop.advanceTime(by: amount)
    }

    func send(_ text: String) throws {
        try self.client.writeInbound(ByteBuffer(string: text))
    }

    func send(_ bytes: [UInt8]) throws {
        try self.client.writeInbound(ByteBuffer(bytes: bytes))
    }

    /// Everything the gateway wrote to the client since the last call.
    func clientBytes() throws -> [UInt8] {
        try Self.drain(self.client)
    }

    func clientResponses() throws -> [WireMessage] {
        try parseMessages(self.clientBytes(), responses: true)
    }

    /// Everything the gateway wrote to upstream connection `index` since the last call.
    func upstreamRequests(_ index: Int = 0) throws -> [WireMessage] {
        try parseMessages(Self.drain(self.upstream(index)), responses: false)
    }

    /// The raw bytes written to upstream connection `index` since the last call.
    func upstreamBytes(_ index: Int = 0) throws -> [UInt8] {
        try Self.drain(self.upstream(index))
    }

    func respond(_ text: String, on index: Int = 0) throws {
        try self.upstream(index).writeInbound(socketRead(text))
    }

    private static func drain(_ channel: EmbeddedChannel) throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            bytes += buffer.readableBytesView
        }
        return bytes
    }

    /// Closes everything and empties the loop (it must not be freed with tasks left).
    func finish() {
        self.context.shutdown()
        _ = try? self.client.finish(acceptAlreadyClosed: true)
        for channel in self.connector.channels {
            _ = try? channel.finish(acceptAlreadyClosed: true)
        }
        for (promise, _) in self.connector.pending {
            promise.fail(ChannelError.ioOnClosedChannel)
        }
        try? self.loop.syncShutdownGracefully()
    }
}

private let simpleGet = "GET /v1/databases HTTP/1.1\r\nHost: gw.example\r\n\r\n"
/// Holds every close, like a TLS layer waiting for the peer's close_notify.
final class CloseDeferringHandler: ChannelOutboundHandler {
    typealias OutboundIn = NIOAny

    private var held: [(ChannelHandlerContext, CloseMode, EventLoopPromise<Void>?)] = []

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        self.held.append((context, mode, promise))
    }

    /// Lets the held closes through (the peer's close_notify arrived).
    func release() {
        let held = self.held
        self.held.removeAll()
        for (context, mode, promise) in held {
            context.close(mode: mode, promise: promise)
        }
    }
}

/// `text` as NIO hands a socket read on: in a buffer with room to spare (a read that fills
/// its buffer means the kernel may hold more), or exactly full with `filled`.
func socketRead(_ text: String, filled: Bool = false) -> ByteBuffer {
    var buffer = ByteBufferAllocator().buffer(capacity: max(2048, text.utf8.count + 1))
    buffer.writeString(text)
    // A slice's capacity is its length: no room left, as after a read that filled its buffer.
    return filled ? buffer.getSlice(at: buffer.readerIndex, length: buffer.readableBytes)! : buffer
}

private let okResponse = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"

// MARK: - tests

@Suite struct ProxyHandlerForwardingTests {
    @Test func getIsForwardedWithGatewayHeadersAndWithoutHopByHop() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }

        try harness.send(
            "GET /v1/databases?limit=5 HTTP/1.1\r\n"
                + "Host: gw.example:8080\r\n"
                + "Connection: keep-alive, X-Hop\r\n"
                + "X-Hop: 1\r\n"
                + "Keep-Alive: timeout=5\r\n"
                + "Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"
                + "TE: trailers\r\n"
                + "X-Forwarded-For: 6.6.6.6\r\n"
                + "X-DBAudit-Subject: admin\r\n"
                + "X-Request-Id: client-id-1\r\n"
                + "Accept: application/json\r\n"
                + "Authorization: Bearer t0k3n\r\n"
                + "\r\n"
        )

        #expect(harness.upstreamCalls == 1)
        #expect(harness.connector.calls.first?.host == "backend.internal")
        #expect(harness.connector.calls.first?.port == 9000)
        #expect(harness.connector.calls.first?.connectTimeout == .seconds(2))

        let requests = try harness.upstreamRequests()
        #expect(requests.count == 1)
        let request = try #require(requests.first)
        #expect(request.startLine == "GET /v1/databases?limit=5 HTTP/1.1")
        #expect(request.values("Host") == ["backend.internal:9000"])
        #expect(request.values("X-Request-Id") == ["client-id-1"])
        #expect(request.values("X-Forwarded-For") == ["192.0.2.10"])
        #expect(request.values("X-Forwarded-Proto") == ["http"])
        #expect(request.values("X-Forwarded-Host") == ["gw.example:8080"])
        #expect(request.values("Accept") == ["application/json"])
        // The client's credential stays at the gateway unless forward_authorization is set.
        #expect(request.values("Authorization") == [])
        for name in [
            "Connection", "X-Hop", "Keep-Alive", "Proxy-Authorization", "TE", "X-DBAudit-Subject", "Content-Length",
            "Transfer-Encoding",
        ] {
            #expect(!request.has(name), "\(name) was forwarded:\n\(request)")
        }
        // Nothing is sent to the client before the upstream answers.
        #expect(try harness.clientBytes().isEmpty)

        try harness.respond(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nX-Request-Id: upstream-id\r\n"
                + "Connection: keep-alive, X-Internal\r\nX-Internal: secret\r\nKeep-Alive: timeout=10\r\n\r\n{}"
        )
        let responses = try harness.clientResponses()
        #expect(responses.count == 1)
        let response = try #require(responses.first)
        #expect(response.startLine == "HTTP/1.1 200 OK")
        #expect(response.values("X-Request-Id") == ["client-id-1"])
        #expect(response.values("Content-Type") == ["application/json"])
        #expect(response.bodyText == "{}")
        #expect(!response.has("X-Internal"))
        #expect(!response.has("Keep-Alive"))
        #expect(!response.has("Connection"))
        #expect(harness.client.isActive)
        #expect(harness.context.idleUpstreamConnections == 1)
    }

    @Test func mintedRequestIDIsSharedByUpstreamRequestAndClientResponse() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send("GET / HTTP/1.1\r\nHost: gw.example\r\nX-Request-Id: has space\r\n\r\n")
        let request = try #require(try harness.upstreamRequests().first)
        let minted = request.values("X-Request-Id")
        #expect(minted.count == 1)
        #expect(isMintedID(minted.first))
        try harness.respond(okResponse)
        let response = try #require(try harness.clientResponses().first)
        #expect(response.values("X-Request-Id") == minted)
        #expect(response.bodyText == "hello")
    }

    @Test func postBodyIsForwardedWithContentLength() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send("POST /v1/items HTTP/1.1\r\nHost: g\r\nContent-Length: 11\r\n\r\nhello")
        try harness.send(" world")
        let request = try #require(try harness.upstreamRequests().first)
        #expect(request.startLine == "POST /v1/items HTTP/1.1")
        #expect(request.values("Content-Length") == ["11"])
        #expect(!request.has("Transfer-Encoding"))
        #expect(request.bodyText == "hello world")
        try harness.respond("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        let response = try #require(try harness.clientResponses().first)
        #expect(response.statusCode == 201)
    }

    @Test func chunkedBodyIsForwardedChunked() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(
            "PUT /v1/items/1 HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        let request = try #require(try harness.upstreamRequests().first)
        #expect(request.values("Transfer-Encoding") == ["chunked"])
        #expect(!request.has("Content-Length"))
        #expect(request.chunked)
        #expect(request.bodyText == "hello world")
    }

    @Test func chunkedResponseReachesTheClient() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(simpleGet)
        try harness.respond("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        try harness.respond("2\r\nde\r\n0\r\n\r\n")
        let responses = try harness.clientResponses()
        #expect(responses.count == 1)
        #expect(responses.first?.chunked == true)
        #expect(responses.first?.bodyText == "abcde")
        #expect(harness.client.isActive)
    }

    @Test func upstreamErrorStatusIsRelayedNotRewritten() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(simpleGet)
        try harness.respond("HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop")
        let response = try #require(try harness.clientResponses().first)
        #expect(response.statusCode == 404)
        #expect(response.bodyText == "nop")
    }

    @Test func http10ClientWithoutKeepAliveIsClosedAfterResponse() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send("GET /old HTTP/1.0\r\n\r\n")
        let request = try #require(try harness.upstreamRequests().first)
        #expect(request.startLine == "GET /old HTTP/1.1")
        #expect(request.values("Host") == ["backend.internal:9000"])
        #expect(!request.has("X-Forwarded-Host"))
        try harness.respond(okResponse)
        let response = try #require(try harness.clientResponses().first)
        #expect(response.startLine.hasPrefix("HTTP/1.0 200"))
        #expect(response.bodyText == "hello")
        #expect(!harness.client.isActive)
    }

    @Test func http10KeepAliveClientGetsKeepAlive() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send("GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        try harness.respond(okResponse)
        let response = try #require(try harness.clientResponses().first)
        #expect(response.values("Connection") == ["keep-alive"])
        #expect(harness.client.isActive)
    }

    @Test func http10ResponseWithoutLengthIsCloseDelimited() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send("GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        try harness.respond("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        let response = try #require(try harness.clientResponses().first)
        #expect(response.values("Connection") == ["close"])
        #expect(!response.chunked)
        #expect(response.bodyText == "abc")
        #expect(!harness.client.isActive)
    }

    @Test func clientConnectionCloseIsHonoured() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send("GET / HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n")
        try harness.respond(okResponse)
        let response = try #require(try harness.clientResponses().first)
        #expect(response.values("Connection") == ["close"])
        #expect(!harness.client.isActive)
        // The upstream connection itself was fine and is kept for the next client.
        #expect(harness.context.idleUpstreamConnections == 1)
    }
}

@Suite struct ProxyHandlerPoolTests {
    /// The sweep runs on the loop's timer; how long a connection has been idle is read
    /// from the injected clock.
    @Test func anIdleUpstreamConnectionIsClosedOnceTheClockPassesItsIdleTimeout() throws {
        let harness = try ProxyHarness { $0.upstream.idleTimeout = .seconds(8) }
        defer { harness.finish() }
        try harness.send(simpleGet)
        try harness.respond(okResponse)
        #expect(try harness.clientResponses().count == 1)
        #expect(harness.context.idleUpstreamConnections == 1)
        // Sweeps (every 2 s) while the clock stands still keep it.
        harness.loop.advanceTime(by: .seconds(4))
        #expect(harness.context.idleUpstreamConnections == 1)
        harness.clock.advance(seconds: 7)
        harness.loop.advanceTime(by: .seconds(2))
        #expect(harness.context.idleUpstreamConnections == 1)
        harness.clock.advance(seconds: 2)
        harness.loop.advanceTime(by: .seconds(2))
        #expect(harness.context.idleUpstreamConnections == 0)
        #expect(!harness.upstream().isActive)
    }

    @Test func upstreamConnectionIsReusedForTheNextRequest() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(simpleGet)
        #expect(try harness.upstreamRequests().count == 1)
        try harness.respond(okResponse)
        #expect(try harness.clientResponses().count == 1)
        #expect(harness.context.idleUpstreamConnections == 1)

        try harness.send("GET /second HTTP/1.1\r\nHost: gw.example\r\n\r\n")
        #expect(harness.upstreamCalls == 1)
        #expect(harness.context.idleUpstreamConnections == 0)
        let second = try #require(try harness.upstreamRequests(0).first)
        #expect(second.startLine == "GET /second HTTP/1.1")
        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
        let response = try #require(try harness.clientResponses().first)
        #expect(response.bodyText == "second")
        #expect(harness.context.idleUpstreamConnections == 1)
    }

    @Test func upstreamConnectionCloseIsNotReused() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(simpleGet)
        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        let response = try #require(try harness.clientResponses().first)
        #expect(response.bodyText == "hello")
        // The client connection stays open; only the upstream one is dropped.
        #expect(!response.has("Connection"))
        #expect(harness.client.isActive)
        #expect(harness.context.idleUpstreamConnections == 0)
        #expect(!harness.upstream(0).isActive)

        try harness.send(simpleGet)
        #expect(harness.upstreamCalls == 2)
        #expect(try harness.upstreamRequests(1).count == 1)
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(
            "GET /one HTTP/1.1\r\nHost: g\r\nX-Request-Id: first\r\n\r\nGET /two HTTP/1.1\r\nHost: g\r\nX-Request-Id: second\r\n\r\n"
        )
        // Only the first request is in flight.
        let first = try harness.upstreamRequests()
        #expect(first.map(\.startLine) == ["GET /one HTTP/1.1"])

        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none")
        // The second request now goes out on the same, reused connection.
        let second = try harness.upstreamRequests()
        #expect(second.map(\.startLine) == ["GET /two HTTP/1.1"])
        #expect(harness.upstreamCalls == 1)

        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo")
        let responses = try harness.clientResponses()
        #expect(responses.map(\.bodyText) == ["one", "two"])
        #expect(responses.map { $0.values("X-Request-Id") } == [["first"], ["second"]])
        #expect(harness.client.isActive)
    }

    /// A malformed request pipelined behind a good one is refused only after the good one
    /// was answered, in order, and the connection then closes.
    @Test func aPipelinedRefusalComesAfterTheResponseOwed() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(
            "GET /one HTTP/1.1\r\nHost: g\r\nX-Request-Id: first\r\n\r\nGET /two HTTP/1.1\r\nX-Request-Id: second\r\n\r\n"
        )
        #expect(try harness.upstreamRequests().map(\.startLine) == ["GET /one HTTP/1.1"])
        #expect(try harness.clientResponses().isEmpty)
        #expect(harness.client.isActive)
        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none")
        let responses = try harness.clientResponses()
        #expect(responses.map(\.statusCode) == [200, 400])
        #expect(responses.map { $0.values("X-Request-Id") } == [["first"], ["second"]])
        #expect(responses.last?.values("Connection") == ["close"])
        #expect(!harness.client.isActive)
    }

    /// Quiescing while a pipelined request waits: the current response says
    /// `Connection: close`, the waiting request is never forwarded.
    @Test func quiesceDropsTheWaitingPipelinedRequest() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send("GET /one HTTP/1.1\r\nHost: g\r\n\r\nGET /two HTTP/1.1\r\nHost: g\r\n\r\n")
        #expect(try harness.upstreamRequests().map(\.startLine) == ["GET /one HTTP/1.1"])
        harness.client.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none")
        let responses = try harness.clientResponses()
        #expect(responses.map(\.bodyText) == ["one"])
        #expect(responses.first?.values("Connection") == ["close"])
        #expect(try harness.upstreamRequests().isEmpty)
        #expect(!harness.client.isActive)
    }
}

@Suite struct ProxyHandlerErrorTests {
    private func expectJSONError(
        _ response: WireMessage?,
        status: Int,
        code: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        guard let response else {
            Issue.record("no response", sourceLocation: sourceLocation)
            return
        }
        #expect(response.statusCode == status, "\(response)", sourceLocation: sourceLocation)
        #expect(response.values("Content-Type") == ["application/json"], sourceLocation: sourceLocation)
        #expect(response.values("Cache-Control") == ["no-store"], sourceLocation: sourceLocation)
        let body = response.bodyText
        #expect(
            body.hasPrefix("{\"error\":\"\(code)\",\"error_description\":\""),
            "\(body)",
            sourceLocation: sourceLocation
        )
        let requestID = jsonMember("request_id", in: body)
        #expect(requestID != nil && !requestID!.isEmpty, sourceLocation: sourceLocation)
        #expect(response.values("X-Request-Id") == [requestID ?? "?"], sourceLocation: sourceLocation)
    }

    @Test func failingConnectorGives502JSON() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        harness.connector.mode = .fail
        try harness.send(simpleGet)
        #expect(harness.upstreamCalls == 1)
        let responses = try harness.clientResponses()
        #expect(responses.count == 1)
        self.expectJSONError(responses.first, status: 502, code: "upstream_unavailable")
        #expect(isMintedID(responses.first.flatMap { jsonMember("request_id", in: $0.bodyText) }))
    }

    @Test func failing502KeepsTheClientRequestID() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        harness.connector.mode = .fail
        try harness.send("GET / HTTP/1.1\r\nHost: g\r\nX-Request-Id: trace-77\r\n\r\n")
        let response = try #require(try harness.clientResponses().first)
        self.expectJSONError(response, status: 502, code: "upstream_unavailable")
        #expect(jsonMember("request_id", in: response.bodyText) == "trace-77")
    }

    @Test func connectFailureAfterCompleteRequestKeepsConnectionUsable() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        harness.connector.mode = .pending
        try harness.send(simpleGet)
        #expect(try harness.clientBytes().isEmpty)
        try harness.connector.completePending(succeed: false)
        let response = try #require(try harness.clientResponses().first)
        self.expectJSONError(response, status: 502, code: "upstream_unavailable")
        #expect(!response.has("Connection"))
        #expect(harness.client.isActive)

        // The next request on the same connection is served.
        harness.connector.mode = .connect
        try harness.send(simpleGet)
        #expect(try harness.upstreamRequests().count == 1)
        try harness.respond(okResponse)
        #expect(try harness.clientResponses().first?.bodyText == "hello")
    }

    @Test func bodyBufferedWhileConnectingIsSentAfterTheHead() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        harness.connector.mode = .pending
        try harness.send("POST /v1/x HTTP/1.1\r\nHost: g\r\nContent-Length: 7\r\n\r\npayload")
        try harness.connector.completePending(succeed: true)
        let request = try #require(try harness.upstreamRequests().first)
        #expect(request.startLine == "POST /v1/x HTTP/1.1")
        #expect(request.bodyText == "payload")
    }

    @Test func smugglingRequestIsRejectedWithoutContactingUpstream() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(
            "POST /v1/x HTTP/1.1\r\nHost: g\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: g\r\n\r\n"
        )
        let responses = try harness.clientResponses()
        #expect(responses.count == 1)
        self.expectJSONError(responses.first, status: 400, code: "invalid_request")
        #expect(responses.first?.values("Connection") == ["close"])
        #expect(harness.upstreamCalls == 0)
        #expect(!harness.client.isActive)
    }

    @Test func duplicateHostIsRejectedWithoutContactingUpstream() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send("GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n")
        let response = try #require(try harness.clientResponses().first)
        self.expectJSONError(response, status: 400, code: "invalid_request")
        #expect(harness.upstreamCalls == 0)
        #expect(!harness.client.isActive)
    }

    @Test func absoluteFormTargetIsRejected() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send("GET http://internal.example/admin HTTP/1.1\r\nHost: internal.example\r\n\r\n")
        let response = try #require(try harness.clientResponses().first)
        self.expectJSONError(response, status: 400, code: "invalid_request")
        #expect(harness.upstreamCalls == 0)
    }

    @Test func oversizedHeadersGive431() throws {
        let harness = try ProxyHarness { $0.server.maxHeaderBytes = 1024 }
        defer { harness.finish() }
        try harness.send("GET / HTTP/1.1\r\nHost: g\r\nX-Big: \(String(repeating: "a", count: 2000))\r\n\r\n")
        let responses = try harness.clientResponses()
        #expect(responses.count == 1)
        self.expectJSONError(responses.first, status: 431, code: "request_header_fields_too_large")
        #expect(responses.first?.bodyText.contains("1024") == true)
        #expect(harness.upstreamCalls == 0)
        #expect(!harness.client.isActive)
    }

    @Test func headersUnderTheLimitPass() throws {
        let harness = try ProxyHarness { $0.server.maxHeaderBytes = 1024 }
        defer { harness.finish() }
        try harness.send("GET / HTTP/1.1\r\nHost: g\r\nX-Big: \(String(repeating: "a", count: 500))\r\n\r\n")
        #expect(harness.upstreamCalls == 1)
        #expect(try harness.upstreamRequests().first?.values("X-Big").first?.count == 500)
    }

    @Test func declaredBodyOverLimitGives413() throws {
        let harness = try ProxyHarness { $0.server.maxBodyBytes = 8 }
        defer { harness.finish() }
        try harness.send("POST / HTTP/1.1\r\nHost: g\r\nContent-Length: 9\r\n\r\n123456789")
        let response = try #require(try harness.clientResponses().first)
        self.expectJSONError(response, status: 413, code: "request_too_large")
        #expect(harness.upstreamCalls == 0)
        #expect(!harness.client.isActive)
    }

    @Test func streamedBodyOverLimitGives413AndAbortsUpstream() throws {
        let harness = try ProxyHarness { $0.server.maxBodyBytes = 8 }
        defer { harness.finish() }
        try harness.send("POST / HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        #expect(harness.upstreamCalls == 1)
        #expect(try harness.clientBytes().isEmpty)
        try harness.send("5\r\nworld\r\n")
        let response = try #require(try harness.clientResponses().first)
        self.expectJSONError(response, status: 413, code: "request_too_large")
        #expect(!harness.client.isActive)
        #expect(!harness.upstream().isActive)
        #expect(harness.context.idleUpstreamConnections == 0)
    }

    @Test func upstreamResponseTimeoutGives504() throws {
        let harness = try ProxyHarness { $0.upstream.responseTimeout = .seconds(5) }
        defer { harness.finish() }
        try harness.send(simpleGet)
        #expect(try harness.upstreamRequests().count == 1)
        harness.loop.advanceTime(by: .seconds(4))
        #expect(try harness.clientBytes().isEmpty)
        harness.loop.advanceTime(by: .seconds(2))
        let response = try #require(try harness.clientResponses().first)
        self.expectJSONError(response, status: 504, code: "upstream_timeout")
        // The timed-out upstream connection is dropped; the client may go on.
        #expect(!harness.upstream().isActive)
        #expect(harness.context.idleUpstreamConnections == 0)
        #expect(harness.client.isActive)
    }

    @Test func stalledResponseBodyClosesTheClient() throws {
        let harness = try ProxyHarness { $0.upstream.responseTimeout = .seconds(5) }
        defer { harness.finish() }
        try harness.send(simpleGet)
        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel")
        harness.loop.advanceTime(by: .seconds(6))
        let bytes = try harness.clientBytes()
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(text.hasSuffix("\r\n\r\nhel"))
        #expect(!harness.client.isActive)
        #expect(!harness.upstream().isActive)
    }

    @Test func upstreamClosingMidResponseClosesTheClient() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(simpleGet)
        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel")
        try harness.upstream().close().wait()
        #expect(!harness.client.isActive)
    }

    @Test func upstreamClosingBeforeResponseGives502() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(simpleGet)
        try harness.upstream().close().wait()
        let response = try #require(try harness.clientResponses().first)
        self.expectJSONError(response, status: 502, code: "upstream_error")
        #expect(harness.client.isActive)
    }

    @Test func requestBodyTimeoutGives408() throws {
        let harness = try ProxyHarness { $0.server.bodyTimeout = .seconds(3) }
        defer { harness.finish() }
        try harness.send("POST / HTTP/1.1\r\nHost: g\r\nContent-Length: 10\r\n\r\nabc")
        harness.loop.advanceTime(by: .seconds(2))
        try harness.send("de")
        harness.loop.advanceTime(by: .seconds(2))
        #expect(try harness.clientBytes().isEmpty)
        harness.loop.advanceTime(by: .seconds(2))
        let response = try #require(try harness.clientResponses().first)
        self.expectJSONError(response, status: 408, code: "request_timeout")
        #expect(!harness.client.isActive)
        #expect(!harness.upstream().isActive)
    }

    @Test func slowRequestHeadGetsRaw408() throws {
        let harness = try ProxyHarness { $0.server.headerTimeout = .seconds(2) }
        defer { harness.finish() }
        try harness.send("GET / HTTP/1.1\r\nHo")
        harness.advance(by: .seconds(3))
        let response = try #require(try harness.clientResponses().first)
        #expect(response.statusCode == 408)
        #expect(response.values("Content-Type") == ["application/json"])
        #expect(response.values("Connection") == ["close"])
        #expect(response.bodyText.hasPrefix("{\"error\":\"request_timeout\",\"error_description\":\""))
        #expect(isMintedID(jsonMember("request_id", in: response.bodyText)))
        #expect(!harness.client.isActive)
        #expect(harness.upstreamCalls == 0)
        // Like every other gateway error, the raw 408 carries the id and no-store.
        #expect(response.values("X-Request-Id") == [jsonMember("request_id", in: response.bodyText) ?? "?"])
        #expect(response.values("Cache-Control") == ["no-store"])
    }

    @Test func idleConnectionIsClosedSilently() throws {
        let harness = try ProxyHarness { $0.server.idleTimeout = .seconds(5) }
        defer { harness.finish() }
        try harness.send(simpleGet)
        try harness.respond(okResponse)
        #expect(try harness.clientResponses().count == 1)
        harness.advance(by: .seconds(4))
        #expect(harness.client.isActive)
        harness.advance(by: .seconds(2))
        #expect(!harness.client.isActive)
        #expect(try harness.clientBytes().isEmpty)
    }

    @Test func clientClosingMidExchangeAbortsUpstream() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(simpleGet)
        #expect(harness.upstream().isActive)
        try harness.client.close().wait()
        #expect(!harness.upstream().isActive)
        #expect(harness.context.idleUpstreamConnections == 0)
    }

    @Test func unsupportedExpectationGives417() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send("POST / HTTP/1.1\r\nHost: g\r\nContent-Length: 2\r\nExpect: magic\r\n\r\nhi")
        let response = try #require(try harness.clientResponses().first)
        self.expectJSONError(response, status: 417, code: "expectation_failed")
        #expect(harness.upstreamCalls == 0)
    }

    @Test func expectContinueIsAnsweredByTheGateway() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send("POST / HTTP/1.1\r\nHost: g\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        let interim = try harness.clientResponses()
        #expect(interim.map(\.statusCode) == [100])
        try harness.send("hi")
        let request = try #require(try harness.upstreamRequests().first)
        #expect(!request.has("Expect"))
        #expect(request.bodyText == "hi")
    }
}

@Suite struct ProxyHandlerEdgeCaseTests {
    @Test func headResponseHasNoBodyAndTheConnectionsStayInSync() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send("HEAD /v1/x HTTP/1.1\r\nHost: g\r\n\r\n")
        #expect(try harness.upstreamRequests().first?.startLine == "HEAD /v1/x HTTP/1.1")
        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        let text = String(decoding: try harness.clientBytes(), as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(text.lowercased().contains("content-length: 5\r\n"))
        #expect(text.hasSuffix("\r\n\r\n"))
        #expect(harness.context.idleUpstreamConnections == 1)

        try harness.send(simpleGet)
        #expect(harness.upstreamCalls == 1)
        try harness.respond(okResponse)
        #expect(try harness.clientResponses().first?.bodyText == "hello")
    }

    @Test func headRequestErrorHasNoBody() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        harness.connector.mode = .pending
        try harness.send("HEAD / HTTP/1.1\r\nHost: g\r\n\r\n")
        try harness.connector.completePending(succeed: false)
        let text = String(decoding: try harness.clientBytes(), as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"))
        #expect(text.hasSuffix("\r\n\r\n"), "a body followed the head: \(text)")
        #expect(harness.client.isActive)
    }

    @Test func interimUpstreamResponseIsNotRelayed() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(simpleGet)
        try harness.respond("HTTP/1.1 100 Continue\r\n\r\n" + okResponse)
        let responses = try harness.clientResponses()
        #expect(responses.map(\.statusCode) == [200])
        #expect(responses.first?.bodyText == "hello")
    }

    @Test func earlyUpstreamResponseClosesBothConnections() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send("POST /upload HTTP/1.1\r\nHost: g\r\nContent-Length: 100\r\n\r\nabc")
        try harness.respond("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nnope")
        let response = try #require(try harness.clientResponses().first)
        #expect(response.statusCode == 413)
        #expect(response.bodyText == "nope")
        #expect(response.values("Connection") == ["close"])
        #expect(!harness.client.isActive)
        // The upstream still expects the rest of the body: it cannot be reused.
        #expect(harness.context.idleUpstreamConnections == 0)
        #expect(!harness.upstream().isActive)
    }

    @Test func closeDelimitedUpstreamResponseIsRechunkedForTheClient() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(simpleGet)
        try harness.respond("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc")
        try harness.upstream().close().wait()
        let response = try #require(try harness.clientResponses().first)
        #expect(response.statusCode == 200)
        #expect(response.chunked)
        #expect(response.bodyText == "abc")
        #expect(harness.client.isActive)
        #expect(harness.context.idleUpstreamConnections == 0)
    }

    /// The upstream's chunked body is re-chunked for the client with the trailers a client
    /// may see; the upstream connection goes back to the pool.
    @Test func chunkedResponseKeepsItsHarmlessTrailers() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(simpleGet)
        try harness.respond(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\n"
                + "X-Sum: 5\r\nSet-Cookie: s=1\r\nX-Request-Id: forged\r\n\r\n"
        )
        let text = String(decoding: try harness.clientBytes(), as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(!text.contains("Trailer:"))
        #expect(text.hasSuffix("\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n"))
        #expect(harness.context.idleUpstreamConnections == 1)
    }

    /// HEAD: the framing fields a GET would get, no body, no chunk terminator; the client
    /// connection stays in sync for the next request.
    @Test func headResponseToAChunkedUpstreamHasNoTerminator() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send("HEAD /v1/x HTTP/1.1\r\nHost: g\r\n\r\n")
        try harness.respond("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        let text = String(decoding: try harness.clientBytes(), as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(text.contains("\r\nTransfer-Encoding: chunked\r\n"))
        #expect(text.hasSuffix("\r\n\r\n"))
        #expect(!text.contains("0\r\n\r\n"))
        try harness.send(simpleGet)
        try harness.respond(okResponse)
        #expect(try harness.clientResponses().map(\.bodyText) == ["hello"])
    }

    /// An HTTP/1.0 client gets a chunked upstream body as it is, ended by the close.
    @Test func http10ClientGetsAChunkedBodyUntilTheClose() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send("GET /v1/x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        try harness.respond("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n")
        let text = String(decoding: try harness.clientBytes(), as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.0 200 OK\r\n"))
        #expect(text.contains("\r\nConnection: close\r\n"))
        #expect(!text.contains("Transfer-Encoding"))
        #expect(text.hasSuffix("\r\n\r\nhello"))
        #expect(!harness.client.isActive)
    }

    /// Thousands of pipelined requests in one read, each refused at once: every one is
    /// answered, in order, without nesting a delivery per request on the stack.
    @Test func manyPipelinedRefusalsInOneReadAreAllAnswered() throws {
        // A route that needs a credential: a request without one is refused on the spot.
        let harness = try ProxyHarness {
            $0.routes = [RouteSettings(method: nil, path: "/**", scopes: ["read:x"], isPublic: false)]
        }
        defer { harness.finish() }
        let count = 20_000
        try harness.send(String(repeating: "GET /v1/x HTTP/1.1\r\nHost: g\r\n\r\n", count: count))
        let text = String(decoding: try harness.clientBytes(), as: UTF8.self)
        #expect(text.components(separatedBy: "HTTP/1.1 401 ").count - 1 == count)
        #expect(harness.client.isActive)
    }

    @Test func unsolicitedUpstreamBytesDropTheConnection() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(simpleGet)
        try harness.respond(okResponse + "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
        #expect(try harness.clientResponses().map(\.bodyText) == ["hello"])
        #expect(harness.context.idleUpstreamConnections == 0)
        try harness.send(simpleGet)
        #expect(harness.upstreamCalls == 2)
    }

    @Test func connectionArrivingAfterClientLeftGoesToThePool() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        harness.connector.mode = .pending
        try harness.send(simpleGet)
        try harness.client.close().wait()
        try harness.connector.completePending(succeed: true)
        #expect(harness.context.idleUpstreamConnections == 1)
        #expect(try harness.upstreamRequests().isEmpty)
    }

    @Test func zeroIdleLimitClosesEveryUpstreamConnection() throws {
        let harness = try ProxyHarness { $0.upstream.maxIdleConnectionsPerLoop = 0 }
        defer { harness.finish() }
        try harness.send(simpleGet)
        try harness.respond(okResponse)
        #expect(harness.context.idleUpstreamConnections == 0)
        #expect(!harness.upstream(0).isActive)
        try harness.send(simpleGet)
        #expect(harness.upstreamCalls == 2)
    }

    @Test func reloadWithNewUpstreamUsesAFreshPool() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(simpleGet)
        try harness.respond(okResponse)
        #expect(harness.context.idleUpstreamConnections == 1)

        var configuration = harness.context.configuration
        configuration.upstream = UpstreamSettings(host: "backend-2.internal", port: 9100)
        harness.apply(configuration)
        #expect(!harness.upstream(0).isActive)

        try harness.send(simpleGet)
        #expect(harness.upstreamCalls == 2)
        #expect(harness.connector.calls.last?.host == "backend-2.internal")
        #expect(harness.connector.calls.last?.port == 9100)
        #expect(try harness.upstreamRequests(1).first?.values("Host") == ["backend-2.internal:9100"])
    }

    @Test func quiesceClosesAnIdleConnection() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        // Idle after a request: the front holds a quiesce back from a connection that has
        // not sent its first request yet (ClientFrontHandlerTests).
        try harness.send(simpleGet)
        try harness.respond(okResponse)
        #expect(try harness.clientResponses().count == 1)
        harness.client.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(!harness.client.isActive)
    }

    @Test func quiesceLetsTheActiveExchangeFinishThenCloses() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(simpleGet)
        harness.client.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(harness.client.isActive)
        try harness.respond(okResponse)
        let response = try #require(try harness.clientResponses().first)
        #expect(response.bodyText == "hello")
        #expect(response.values("Connection") == ["close"])
        #expect(!harness.client.isActive)
    }

    /// While the upstream cannot take more data the gateway stops reading the client, so
    /// a pause in the body is the gateway's doing and must not be answered with a 408
    /// blaming the client.
    @Test func upstreamBackpressureDoesNotCountAsAClientStall() throws {
        let harness = try ProxyHarness { $0.server.bodyTimeout = .seconds(3) }
        defer { harness.finish() }
        try harness.send("POST / HTTP/1.1\r\nHost: g\r\nContent-Length: 10\r\n\r\nabc")
        harness.upstream().isWritable = false
        harness.upstream().pipeline.fireChannelWritabilityChanged()
        harness.loop.advanceTime(by: .seconds(5))
        let text = String(decoding: try harness.clientBytes(), as: UTF8.self)
        #expect(text.isEmpty)
    }
}

/// A hostile or desynchronised upstream: whatever it sends past a complete response must
/// never be read as the next client's response.
@Suite struct ProxyHandlerHostileUpstreamTests {
    static let tornHead =
        "HTTP/1.1 302 Found\r\nLocation: https://evil.example/phish\r\nSet-Cookie: session=attacker; Path=/\r\nX-Pad: "

    /// The second client's exchange: it must go to a fresh upstream connection and see
    /// only that connection's answer.
    private func expectNextClientIsServedFresh(_ harness: ProxyHarness) throws {
        try harness.send(simpleGet)
        try #require(harness.upstreamCalls == 2)
        try harness.respond(okResponse, on: 1)
        let text = String(decoding: try harness.clientBytes(), as: UTF8.self)
        #expect(!text.contains("evil.example"))
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
    }

    @Test(arguments: [
        ("HEAD /v1/x HTTP/1.1\r\nHost: g\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
        (simpleGet, "HTTP/1.1 204 No Content\r\n\r\n"),
        (simpleGet, "HTTP/1.1 304 Not Modified\r\n\r\n"),
        (simpleGet, okResponse),
        (simpleGet, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ])
    func responseFollowedByATornHeadIsNotReused(request: String, response: String) throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(request)
        try harness.respond(response + Self.tornHead)
        let text = String(decoding: try harness.clientBytes(), as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 "))
        #expect(!text.contains("evil.example"))
        #expect(harness.context.idleUpstreamConnections == 0)
        #expect(!harness.upstream().isActive)
        try self.expectNextClientIsServedFresh(harness)
    }

    @Test func tornHeadInALaterReadOfTheSameBurstIsNotReused() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(simpleGet)
        // Two reads before one read-complete: the response ends exactly at the first read's end.
        harness.upstream().pipeline.fireChannelRead(socketRead(okResponse))
        harness.upstream().pipeline.fireChannelRead(socketRead(Self.tornHead))
        harness.upstream().pipeline.fireChannelReadComplete()
        #expect(try harness.clientResponses().map(\.bodyText) == ["hello"])
        #expect(harness.context.idleUpstreamConnections == 0)
        try self.expectNextClientIsServedFresh(harness)
    }

    @Test func responseEndingWhereAFullReadEndsIsNotReused() throws {
        // NIO reads at most a few full buffers per wakeup: a response that ends exactly at
        // the end of a read that filled its buffer may have bytes behind it in the kernel,
        // which the next wakeup would hand to whoever borrowed the connection meanwhile.
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(simpleGet)
        harness.upstream().pipeline.fireChannelRead(socketRead(okResponse, filled: true))
        harness.upstream().pipeline.fireChannelReadComplete()
        #expect(try harness.clientResponses().map(\.bodyText) == ["hello"])
        #expect(harness.context.idleUpstreamConnections == 0)
        try self.expectNextClientIsServedFresh(harness)
    }

    @Test func pipelinedRequestNeverGetsTheTornHead() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send("HEAD /a HTTP/1.1\r\nHost: g\r\n\r\nGET /b HTTP/1.1\r\nHost: g\r\n\r\n")
        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + Self.tornHead)
        #expect(try harness.upstreamRequests(0).count == 1)
        try #require(harness.upstreamCalls == 2)
        try harness.respond(okResponse, on: 1)
        let text = String(decoding: try harness.clientBytes(), as: UTF8.self)
        #expect(!text.contains("evil.example"))
        #expect(text.components(separatedBy: "HTTP/1.1 200 OK").count == 3)
    }

    @Test func bytesWhileIdleInThePoolCloseTheConnection() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(simpleGet)
        try harness.respond(okResponse)
        #expect(harness.context.idleUpstreamConnections == 1)
        try harness.respond(Self.tornHead)
        #expect(harness.context.idleUpstreamConnections == 0)
        #expect(!harness.upstream().isActive)
        try self.expectNextClientIsServedFresh(harness)
    }

    @Test func bytesWhileIdleSpoilTheConnectionBeforeItsCloseCompletes() throws {
        // Over TLS a close waits for close_notify: the connection must be unusable at once,
        // not only once the channel is inactive.
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(simpleGet)
        try harness.respond(okResponse)
        let deferring = CloseDeferringHandler()
        try harness.upstream().pipeline.syncOperations.addHandler(deferring, position: .first)
        defer { deferring.release() }
        try harness.respond(Self.tornHead)
        #expect(harness.upstream().isActive, "the close is still in progress")
        try self.expectNextClientIsServedFresh(harness)
    }

    @Test func unrequestedSwitchingProtocolsGives502AtOnce() throws {
        let harness = try ProxyHarness { $0.upstream.responseTimeout = .seconds(5) }
        defer { harness.finish() }
        try harness.send(simpleGet)
        try harness.respond("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        let response = try #require(try harness.clientResponses().first)
        #expect(response.statusCode == 502)
        #expect(jsonMember("error", in: response.bodyText) == "upstream_error")
        #expect(!harness.upstream().isActive)
        #expect(harness.client.isActive)
    }

    @Test func http10KeepAliveWithTheLengthNamedInConnectionCloses() throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send("GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: Content-Length\r\n\r\nhello")
        let response = try #require(try harness.clientResponses().first)
        #expect(!response.has("Content-Length"))
        #expect(response.values("Connection") == ["close"])
        #expect(response.bodyText == "hello")
        #expect(!harness.client.isActive)
    }

    @Test(arguments: ["gzip, chunked", "gzip", "chunked, chunked"])
    func transferCodingOtherThanChunkedGives502(coding: String) throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(simpleGet)
        try harness.respond("HTTP/1.1 200 OK\r\nTransfer-Encoding: \(coding)\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        let text = String(decoding: try harness.clientBytes(), as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"), "\(text)")
        #expect(!harness.upstream().isActive)
    }

    /// Honest responses in every shape still return their connection to the pool.
    @Test(arguments: [
        ["HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"],
        ["HTTP/1.1 200 OK\r\nContent-Le", "ngth: 5\r\n\r", "\nhel", "lo"],
        ["HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"],
        ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"],
        ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "lo\r\n0\r\n", "\r\n"],
        ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"],
        ["HTTP/1.1 204 No Content\r\n\r\n"],
    ])
    func honestResponsesKeepTheirConnection(reads: [String]) throws {
        let harness = try ProxyHarness()
        defer { harness.finish() }
        try harness.send(simpleGet)
        for read in reads {
            try harness.respond(read)
        }
        let response = try #require(try harness.clientResponses().first)
        #expect(response.statusCode == 200 || response.statusCode == 204)
        #expect(harness.context.idleUpstreamConnections == 1)
        #expect(harness.upstream().isActive)
        try harness.send(simpleGet)
        #expect(harness.upstreamCalls == 1)
    }
}
