// Test support: a real redis-server child process on a free loopback port (or a Unix
// socket), the production connector (`RedisConnectors.posix`), and a
// wrapper that runs every `RedisClient` call on the client's event loop.
//
// A support target (not a test target) so GatewayRedisTests and GatewayStoreTests share it.

import Foundation
package import GatewayConfig
import GatewayCore
package import GatewayRedis
package import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private struct ExitedAtStart: Error, CustomStringConvertible {
    package var description: String
}

package struct RedisTestFailure: Error, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }
}

/// One `redis-server` child process, without persistence, listening on 127.0.0.1 only (or
/// only on a Unix socket). `stop()` is idempotent; call it in a `defer`.
package final class RedisServer: @unchecked Sendable {
    package static let defaultBinary = "/usr/bin/redis-server"

    package let port: Int
    package let unixSocketPath: String?
    package let directory: String
    private let binary: String
    private let extraArguments: [String]
    private let lock = NSLock()
    private var process: Process?
    private var launches = 0

    package var endpoint: RedisSettings.Endpoint {
        if let path = self.unixSocketPath { return .unix(path: path) }
        return .tcp(host: "127.0.0.1", port: self.port)
    }

    /// The binary, or a failure telling how to get it: the Redis tests must fail, not skip,
    /// when Redis is missing.
    package static func binaryPath() throws -> String {
        if FileManager.default.isExecutableFile(atPath: defaultBinary) { return defaultBinary }
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(directory)/redis-server"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw RedisTestFailure(
            "redis-server not found at \(defaultBinary) or on PATH: these tests run against a real Redis. "
                + "`make test` installs it (scripts/install-deps.sh), or `apt-get install redis-server`."
        )
    }

    /// Starts a server on a free loopback port (or, with `unixSocket`, on a Unix socket
    /// only) and waits until it accepts connections.
    package static func start(unixSocket: Bool = false, arguments: [String] = []) throws -> RedisServer {
        let binary = try binaryPath()
        var lastError: (any Error)?
        // A free port can be taken by someone else before redis-server binds it: retry when
        // the server exits at start (a readiness timeout is not retried).
        for _ in 0..<5 {
            let tag = UUID().uuidString.prefix(8).lowercased()
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dbgw-redis-\(tag)").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let server = RedisServer(
                binary: binary,
                port: unixSocket ? 0 : try freeLoopbackPort(),
                unixSocketPath: unixSocket ? "/tmp/dbgw-redis-\(tag).sock" : nil,
                directory: directory,
                extraArguments: arguments
            )
            do {
                try server.launch()
                return server
            } catch let error as ExitedAtStart where !unixSocket {
                server.stop()
                lastError = error
            } catch {
                server.stop()
                throw error
            }
        }
        throw lastError ?? RedisTestFailure("redis-server did not start")
    }

    private init(binary: String, port: Int, unixSocketPath: String?, directory: String, extraArguments: [String]) {
        self.binary = binary
        self.port = port
        self.unixSocketPath = unixSocketPath
        self.directory = directory
        self.extraArguments = extraArguments
    }

    deinit {
        self.stop()
    }

    /// Starts the server again on the same port/socket after `kill()`.
    package func restart() throws {
        try self.launch()
    }

    private func launch() throws {
        let logPath: String = self.lock.withLock {
            self.launches += 1
            return "\(self.directory)/redis-\(self.launches).log"
        }
        var arguments = [
            "--port", String(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--dir", self.directory, "--logfile", logPath,
        ]
        if let path = self.unixSocketPath {
            arguments += ["--unixsocket", path, "--unixsocketperm", "700"]
        }
        arguments += self.extraArguments
        let process = Process()
        process.executableURL = URL(fileURLWithPath: self.binary)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.lock.withLock { self.process = process }

        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            // 7.0 logs "Ready to accept connections" for TCP and "The server is now ready to
            // accept connections at <path>" for a Unix socket only.
            if log.lowercased().contains("ready to accept connections") { return }
            if !process.isRunning {
                throw ExitedAtStart(
                    description:
                        "redis-server exited at start (status \(process.terminationStatus)): \(log.suffix(600))"
                )
            }
            usleep(5_000)
        }
        throw RedisTestFailure("redis-server did not become ready within 10 s on \(self.endpoint)")
    }

    /// SIGKILL, as in a crash: no goodbye to connected clients beyond the kernel's.
    package func kill() {
        let process: Process? = self.lock.withLock {
            defer { self.process = nil }
            return self.process
        }
        guard let process else { return }
        if process.isRunning {
            killProcess(process.processIdentifier)
        }
        process.waitUntilExit()
    }

    /// Kills the server (if running) and removes its files. Idempotent.
    package func stop() {
        self.kill()
        try? FileManager.default.removeItem(atPath: self.directory)
        if let path = self.unixSocketPath {
            try? FileManager.default.removeItem(atPath: path)
        }
    }
}

private func killProcess(_ pid: Int32) {
    _ = kill(pid, SIGKILL)
}

/// A loopback port nobody listens on right now.
package func freeLoopbackPort() throws -> Int {
    #if canImport(Glibc)
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #else
    let fd = socket(AF_INET, SOCK_STREAM, 0)
    #endif
    guard fd >= 0 else { throw RedisTestFailure("socket() failed: errno \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw RedisTestFailure("bind() failed: errno \(errno)") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else { throw RedisTestFailure("getsockname() failed: errno \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// The production connector, so the tests exercise exactly what the gateway uses.
package let posixRedisConnector: RedisConnector = RedisConnectors.posix

/// Settings for `server` with the given overrides.
package func redisSettings(
    _ server: RedisServer,
    username: String? = nil,
    password: String? = nil,
    database: Int = 0,
    commandTimeout: Duration = .milliseconds(500)
) -> RedisSettings {
    var settings = RedisSettings(endpoint: server.endpoint)
    settings.username = username
    settings.password = password.map(Secret.init)
    settings.database = database
    settings.commandTimeout = commandTimeout
    return settings
}

/// A one-node Redis Cluster (cluster mode on, every slot on this node): Redis then refuses
/// a command or script whose keys fall in different slots, as a real cluster does.
/// `arguments` go to `redis-server` too (e.g. `--rename-command SPUBLISH ""`).
package func startSingleNodeCluster(arguments: [String] = []) async throws -> RedisServer {
    let server = try RedisServer.start(
        arguments: ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"] + arguments
    )
    do {
        try await withEventLoop { loop in
            let admin = LoopClient(redisSettings(server), on: loop)
            do {
                _ = try await admin.send(["CLUSTER", "ADDSLOTSRANGE", "0", "16383"])
                let ready = try await eventually(timeout: .seconds(10)) {
                    guard case .bulkString(let info) = try await admin.send(["CLUSTER", "INFO"]) else { return false }
                    return String(decoding: info, as: UTF8.self).contains("cluster_state:ok")
                }
                guard ready else { throw RedisTestFailure("the one-node cluster did not reach cluster_state:ok") }
            } catch {
                await admin.close()
                throw error
            }
            await admin.close()
        }
    } catch {
        server.stop()
        throw error
    }
    return server
}

/// Every key name in the database `redis` reaches (`KEYS`: test databases are small).
package func allKeyNames(_ redis: LoopClient) async throws -> [String] {
    guard case .array(let names) = try await redis.send(["KEYS", "*"]) else {
        throw RedisTestFailure("unexpected reply to KEYS")
    }
    return names.compactMap { name in
        guard case .bulkString(let bytes) = name else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// The keys of the (one-node cluster's) database that are not in the slot of `prefix`'s
/// hash tag or do not start with `prefix`: on a cluster a store whose scripts build key
/// names from the prefix (which no client-side check sees) must leave none.
package func keysOutsideTheSlot(of prefix: String, _ redis: LoopClient) async throws -> [String] {
    let slot = ClusterSlot.of(prefix)
    return try await allKeyNames(redis).filter { !$0.hasPrefix(prefix) || ClusterSlot.of($0) != slot }
}

/// Settings for the cluster `server` is the seed of.
package func redisClusterSettings(_ server: RedisServer) -> RedisSettings {
    var settings = redisSettings(server)
    settings.cluster = RedisSettings.Cluster(nodes: [server.endpoint])
    return settings
}

/// A `RedisClient` whose every call is made on its event loop (it is loop-bound and
/// preconditions it), awaited from the test.
package final class LoopClient: @unchecked Sendable {
    package let client: RedisClient
    package let eventLoop: any EventLoop

    package init(
        _ settings: RedisSettings,
        on eventLoop: any EventLoop,
        connector: @escaping RedisConnector = posixRedisConnector,
        events: RedisNodeEvents? = nil
    ) {
        self.client = RedisClient(
            eventLoop: eventLoop,
            settings: settings,
            connector: connector,
            clock: .system,
            events: events
        )
        self.eventLoop = eventLoop
    }

    package func run<T: Sendable>(_ body: @escaping @Sendable (RedisClient) -> EventLoopFuture<T>) async throws -> T {
        try await self.eventLoop.flatSubmit { body(self.client) }.get()
    }

    package func send(_ arguments: [String]) async throws -> RESPValue {
        try await self.run { $0.send(arguments) }
    }

    package func send(bytes arguments: [[UInt8]]) async throws -> RESPValue {
        try await self.run { $0.send(arguments) }
    }

    package var commandsSent: Int {
        get async throws { try await self.eventLoop.submit { self.client.commandsSent }.get() }
    }

    package func close() async {
        try? await self.eventLoop.submit { self.client.close() }.get()
    }
}

/// Runs `body` with one event loop of a fresh one-thread group, shut down afterwards even
/// when `body` throws.
package func withEventLoop<T>(_ body: (any EventLoop) async throws -> T) async throws -> T {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let result: Result<T, any Error>
    do {
        result = .success(try await body(group.next()))
    } catch {
        result = .failure(error)
    }
    try? await group.shutdownGracefully()
    return try result.get()
}

/// A thread-safe list, for callbacks that run on an event loop.
package final class LockedList<Element: Sendable>: @unchecked Sendable {
    package init() {}
    private let lock = NSLock()
    private var elements: [Element] = []

    package func append(_ element: Element) {
        self.lock.withLock { self.elements.append(element) }
    }

    package var values: [Element] { self.lock.withLock { self.elements } }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns whether it held.
package func eventually(timeout: Duration = .seconds(2), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}

extension RESPValue {
    package static func bulk(_ text: String) -> RESPValue { .bulkString(Array(text.utf8)) }
}

/// Whether `ttl` (seconds, as Redis's `TTL` answers) is what a key given `set` seconds at
/// `start` can have now: at most `set`, and at least `set` less the whole seconds since
/// `start` and one for Redis's rounding. The lower bound follows the time the test really
/// took, so a run slowed down (sanitizers, a loaded machine; tests have waited minutes for
/// the task pool there) does not fail it, while a TTL set wrong still does.
package func ttlIsWhatWasSet(_ ttl: Int64, set: Int64, since start: ContinuousClock.Instant) -> Bool {
    let elapsed = (ContinuousClock.now - start).components.seconds + 1
    return ttl <= set && ttl >= set - elapsed - 1
}
