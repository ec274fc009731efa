import Foundation
import GatewayConfig
import GatewayTestSupport
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

@testable import GatewayServer

/// A `GatewayServer` started from a configuration file on 127.0.0.1 (a port the kernel
/// picks), in front of a `LoopbackUpstream`, on an event-loop group the test owns. Methods
/// are called from the test's task.
final class RunningGateway: Sendable {
    let server: GatewayServer
    let group: MultiThreadedEventLoopGroup
    /// The configuration file `reload()` re-reads.
    let configurationPath: String

    private init(server: GatewayServer, group: MultiThreadedEventLoopGroup, configurationPath: String) {
        self.server = server
        self.group = group
        self.configurationPath = configurationPath
    }

    /// The configuration file text for `upstream` with extra `[server]` lines.
    static func configuration(upstreamPort: Int, server: String = "") -> String {
        """
        [server]
        listen = ["127.0.0.1:0"]
        event_loops = 2
        \(server)

        [upstream]
        url = "http://127.0.0.1:\(upstreamPort)"

        [logging]
        level = "critical"

        [[routes]]
        path = "/**"
        public = true
        """
    }

    static func start(upstream: LoopbackUpstream, server settings: String = "") async throws -> RunningGateway {
        let path = try temporaryFile(Self.configuration(upstreamPort: upstream.port, server: settings))
        let configuration = try ConfigurationLoader.load(path: path)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let server = try await GatewayServer(
            application: GatewayApplication.build(from: configuration),
            logger: Logger(label: "gateway-server-tests") { _ in SwiftLogNoOpLogHandler() },
            group: group
        )
        try await server.start()
        return RunningGateway(server: server, group: group, configurationPath: path)
    }

    var port: Int { self.server.boundAddresses.first?.port ?? 0 }

    /// Writes `text` over the configuration file and reloads it.
    func reload(_ text: String) async throws -> Bool {
        try text.write(toFile: self.configurationPath, atomically: true, encoding: .utf8)
        return await self.server.reload(from: self.configurationPath)
    }

    func connect() async throws -> LoopbackClient {
        try await LoopbackClient.connect(port: self.port, group: self.group)
    }

    /// `GET path` on a new connection, closed afterwards.
    func get(_ path: String) async throws -> LoopbackClient.Response {
        let client = try await self.connect()
        defer { Task { await client.close() } }
        return try await client.get(path)
    }

    /// Drains (if the test did not) and stops the loops.
    func stop() async {
        if !self.server.isDraining { await self.server.drain() }
        try? await self.group.shutdownGracefully()
        try? FileManager.default.removeItem(atPath: self.configurationPath)
    }
}

/// Waits until `condition` holds, polling; fails the test after `bound` (scaled by
/// GATEWAY_TEST_TIME_SCALE) instead of hanging. Never asserts how long anything took: the
/// bound only tells a hang from slowness, and is wide because CPU-heavy suites running in
/// parallel on two cores have starved the task pool for 20 s.
func waitUntil(
    _ what: String,
    within bound: Duration = .seconds(60),
    _ condition: @Sendable () async -> Bool
) async throws {
    let deadline = ContinuousClock.now + TestTimeScale.scaled(bound)
    while !(await condition()) {
        guard ContinuousClock.now < deadline else { throw WaitTimedOut(what: what) }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// `operation`'s result, or `WaitTimedOut` once `bound` (scaled) has passed: for awaits that
/// hang when the behaviour under test is broken. The operation runs in a task of its own,
/// left behind on a timeout (it may not respond to cancellation).
func within<Value: Sendable>(
    _ what: String,
    _ bound: Duration = .seconds(60),
    _ operation: @escaping @Sendable () async throws -> Value
) async throws -> Value {
    let outcome = NIOLockedValueBox<CheckedContinuation<Value, any Error>?>(nil)
    let finish: @Sendable (Result<Value, any Error>) -> Void = { result in
        outcome.withLockedValue { continuation in
            defer { continuation = nil }
            return continuation
        }?.resume(with: result)
    }
    return try await withCheckedThrowingContinuation { continuation in
        outcome.withLockedValue { $0 = continuation }
        Task {
            do { finish(.success(try await operation())) } catch { finish(.failure(error)) }
        }
        Task {
            try? await Task.sleep(for: TestTimeScale.scaled(bound))
            finish(.failure(WaitTimedOut(what: what)))
        }
    }
}

struct WaitTimedOut: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(self.what)" }
}

/// Runs `body` against a gateway in front of upstreams called `names` (each answering with
/// its name), and stops everything afterwards, whether `body` succeeded or threw.
func withGateway(
    upstreams names: [String] = ["primary"],
    server settings: String = "",
    _ body: (RunningGateway, [LoopbackUpstream]) async throws -> Void
) async throws {
    let side = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var upstreams: [LoopbackUpstream] = []
    var gateway: RunningGateway?
    do {
        for name in names { upstreams.append(try await LoopbackUpstream.start(name: name, group: side)) }
        let running = try await RunningGateway.start(upstream: upstreams[0], server: settings)
        gateway = running
        try await body(running, upstreams)
    } catch {
        await gateway?.stop()
        for upstream in upstreams { await upstream.stop() }
        try? await side.shutdownGracefully()
        throw error
    }
    await gateway?.stop()
    for upstream in upstreams { await upstream.stop() }
    try? await side.shutdownGracefully()
}
