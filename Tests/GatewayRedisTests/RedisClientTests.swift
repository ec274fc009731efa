import Foundation
import GatewayConfig
import GatewayRedis
import GatewayRedisTestSupport
import GatewayTestSupport
import NIOCore
import NIOPosix
import Testing

// RedisClient against a real redis-server started by each test on a free loopback port (or
// a Unix socket). A missing redis-server fails these tests with a message, it never skips
// them. Serialized: several tests measure latencies, which parallel soak runs would skew.

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

private func elapsed(since start: ContinuousClock.Instant) -> Duration { ContinuousClock.now - start }

private func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// The `RedisClientError` `body` fails with, or nil (recording an issue) if it succeeds or
/// fails otherwise.
private func redisError(
    _ body: () async throws -> Void,
    sourceLocation: SourceLocation = #_sourceLocation
) async -> RedisClientError? {
    do {
        try await body()
        Issue.record("expected a RedisClientError, but the command succeeded", sourceLocation: sourceLocation)
        return nil
    } catch let error as RedisClientError {
        return error
    } catch {
        Issue.record("expected a RedisClientError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Kills `server` (SIGKILL) under a connected `client`: for 2.5 s every command must fail
/// fast with `.unavailable` (or `.connectionClosed`, for one caught on the dying connection),
/// never hang. Then restarts the server and returns how long the same client took to answer
/// again, or nil if it did not within 4 s.
private func outageAndRestart(
    server: RedisServer,
    client: LoopClient,
    commandTimeout: Duration
) async throws -> Duration? {
    #expect(try await client.send(["SET", "before", "outage"]) == .simpleString("OK"))
    server.kill()
    var errors: [RedisClientError] = []
    var slowest = Duration.zero
    let outageStart = ContinuousClock.now
    while elapsed(since: outageStart) < .milliseconds(2500) {
        let start = ContinuousClock.now
        if let error = await redisError({ _ = try await client.send(["GET", "before"]) }) {
            errors.append(error)
            #expect(error == .unavailable || error == .connectionClosed, "got \(error)")
        }
        slowest = max(slowest, elapsed(since: start))
        try await Task.sleep(for: .milliseconds(5))
    }
    print(
        "RedisClient outage (\(server.endpoint)): \(errors.count) commands failed, \(errors.filter { $0 == .unavailable }.count) unavailable, slowest \(slowest)"
    )
    #expect(slowest < commandTimeout + TestTimeScale.scaled(.milliseconds(100)))
    #expect(errors.count > 20)
    #expect(errors.contains(.unavailable))

    try server.restart()
    let restarted = ContinuousClock.now
    while elapsed(since: restarted) < .seconds(4) {
        if (try? await client.send(["PING"])) == .simpleString("PONG") {
            let recovered = elapsed(since: restarted)
            print("RedisClient outage (\(server.endpoint)): recovered \(recovered) after restart")
            return recovered
        }
        try await Task.sleep(for: .milliseconds(10))
    }
    print("RedisClient outage (\(server.endpoint)): no recovery within 4 s of the restart")
    return nil
}

/// Set in the environment of a child test process: the Unix socket it should use.
private let childSocketVariable = "DBGW_REDIS_TEST_CHILD_SOCKET"

private struct ChildOutcome {
    var succeeded: Bool
    var summary: String
}

/// Runs this test binary again, filtered to one test, and waits (at most 60 s) for it.
private func runThisTestBinary(filter: String, environment: [String: String]) throws -> ChildOutcome {
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("dbgw-child-\(UUID().uuidString).log")
    guard FileManager.default.createFile(atPath: output.path, contents: nil) else {
        throw RedisTestFailure("cannot create \(output.path)")
    }
    defer { try? FileManager.default.removeItem(at: output) }
    let handle = try FileHandle(forWritingTo: output)
    defer { try? handle.close() }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
    process.arguments = ["--testing-library", "swift-testing", "--filter", filter]
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = handle
    process.standardError = handle
    try process.run()
    let deadline = Date().addingTimeInterval(60)
    while process.isRunning && Date() < deadline {
        usleep(20_000)
    }
    if process.isRunning {
        process.terminate()
    }
    process.waitUntilExit()
    let log = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
    let how =
        process.terminationReason == .exit
        ? "exit status \(process.terminationStatus)" : "signal \(process.terminationStatus)"
    // That the named test ran and passed (Swift Testing's line for it), not only that the
    // log names it: a skipped or unmatched child exits 0 too.
    let ran = log.contains("Test \(filter)() passed")
    return ChildOutcome(
        succeeded: process.terminationReason == .exit && process.terminationStatus == 0 && ran,
        summary: "\(how); output: \(log.suffix(800))"
    )
}

@Suite(.serialized, .timeLimit(.minutes(2)))
struct RedisClientTests {
    @Test func setGetDelRoundTrip() async throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        try await withEventLoop { loop async throws in
            let client = LoopClient(redisSettings(server), on: loop)
            #expect(try await client.send(["GET", "greeting"]) == .null)
            #expect(try await client.send(["SET", "greeting", "hello"]) == .simpleString("OK"))
            #expect(try await client.send(["GET", "greeting"]) == .bulk("hello"))
            #expect(try await client.send(["EXISTS", "greeting"]) == .integer(1))
            #expect(try await client.send(["DEL", "greeting"]) == .integer(1))
            #expect(try await client.send(["GET", "greeting"]) == .null)
            #expect(try await client.send(["DEL", "greeting"]) == .integer(0))
            let isConnected = try await client.run { $0.eventLoop.makeSucceededFuture($0.isConnected) }
            #expect(isConnected)
            await client.close()
        }
    }

    @Test func valuesAndKeysAreBinarySafe() async throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        try await withEventLoop { loop async throws in
            let client = LoopClient(redisSettings(server), on: loop)
            let allBytes = (0...255).map(UInt8.init) + bytes("\r\n$-1\r\n*1\r\n") + [0, 0, 13, 10]
            let key: [UInt8] = [0x00, 0x0D, 0x0A, 0xFF, 0x20, 0x24]
            #expect(try await client.send(bytes: [bytes("SET"), key, allBytes]) == .simpleString("OK"))
            #expect(try await client.send(bytes: [bytes("GET"), key]) == .bulkString(allBytes))
            #expect(try await client.send(bytes: [bytes("STRLEN"), key]) == .integer(Int64(allBytes.count)))

            // Empty value, and a 1 MiB value that spans many reads.
            #expect(try await client.send(bytes: [bytes("SET"), bytes("empty"), []]) == .simpleString("OK"))
            #expect(try await client.send(["GET", "empty"]) == .bulkString([]))
            let large = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            #expect(try await client.send(bytes: [bytes("SET"), bytes("large"), large]) == .simpleString("OK"))
            #expect(try await client.send(["GET", "large"]) == .bulkString(large))

            // Multibyte text is counted in bytes.
            #expect(try await client.send(["SET", "caf\u{E9}", "\u{1F600}"]) == .simpleString("OK"))
            #expect(try await client.send(["GET", "caf\u{E9}"]) == .bulk("\u{1F600}"))
            await client.close()
        }
    }

    @Test func errorReplyFailsWithServerErrorAndTheConnectionStaysUsable() async throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        try await withEventLoop { loop async throws in
            let client = LoopClient(redisSettings(server), on: loop)
            #expect(try await client.send(["SET", "text", "abc"]) == .simpleString("OK"))
            let connectionID = try await client.send(["CLIENT", "ID"])
            let notInteger = await redisError { _ = try await client.send(["INCR", "text"]) }
            guard case .server(let message) = notInteger else {
                Issue.record("expected .server, got \(String(describing: notInteger))")
                return
            }
            #expect(message.hasPrefix("ERR"), "message: \(message)")
            #expect(message.contains("not an integer"), "message: \(message)")

            let unknown = await redisError { _ = try await client.send(["NO-SUCH-COMMAND"]) }
            if case .server(let message) = unknown {
                #expect(message.hasPrefix("ERR unknown command"), "message: \(message)")
            } else {
                Issue.record("expected .server, got \(String(describing: unknown))")
            }
            let wrongType = await redisError {
                _ = try await client.send(["LPUSH", "text", "x"])
            }
            if case .server(let message) = wrongType {
                #expect(message.hasPrefix("WRONGTYPE"), "message: \(message)")
            } else {
                Issue.record("expected .server, got \(String(describing: wrongType))")
            }
            // An error reply is not a connection failure: the next command works on it.
            #expect(try await client.send(["GET", "text"]) == .bulk("abc"))
            #expect(try await client.send(["CLIENT", "ID"]) == connectionID)
            await client.close()
        }
    }

    /// 100,000 INCRs issued from the loop in one go, then awaited together: the replies are
    /// 1...100000 in order. The command timeout is raised above the 30 s bound so a slow
    /// (debug, loaded) run fails on the bound with its timing, not on per-command deadlines.
    @Test func soakHundredThousandPipelinedINCR() async throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        try await withEventLoop { loop async throws in
            let client = LoopClient(redisSettings(server, commandTimeout: .seconds(60)), on: loop)
            #expect(try await client.send(["PING"]) == .simpleString("PONG"))
            let count = 100_000
            let sentBefore = try await client.commandsSent
            let start = ContinuousClock.now
            let replies = try await client.run { client in
                var futures: [EventLoopFuture<RESPValue>] = []
                futures.reserveCapacity(count)
                for _ in 0..<count {
                    futures.append(client.send(["INCR", "soak:counter"]))
                }
                return EventLoopFuture.whenAllSucceed(futures, on: client.eventLoop)
            }
            let took = elapsed(since: start)
            print(
                "RedisClient soak: \(count) pipelined INCR in \(took) (\(Int(Double(count) / seconds(took))) commands/s)"
            )
            #expect(replies.count == count)
            let firstWrong = replies.indices.first { replies[$0] != .integer(Int64($0 + 1)) }
            #expect(firstWrong == nil, "reply \(firstWrong ?? -1) is \(firstWrong.map { replies[$0] } ?? .null)")
            #expect(try await client.send(["GET", "soak:counter"]) == .bulk(String(count)))
            #expect(try await client.commandsSent - sentBefore == count + 1)
            #expect(took < TestTimeScale.scaled(.seconds(30)))
            await client.close()
        }
    }

    /// 20,000 SET k_i i interleaved with 20,000 GET k_i, all in flight at once: every GET
    /// sees its own SET (Redis and the client keep order).
    @Test func soakInterleavedSetAndGet() async throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        try await withEventLoop { loop async throws in
            let client = LoopClient(redisSettings(server, commandTimeout: .seconds(60)), on: loop)
            let pairs = 20_000
            let start = ContinuousClock.now
            let replies = try await client.run { client in
                var futures: [EventLoopFuture<RESPValue>] = []
                futures.reserveCapacity(2 * pairs)
                for index in 0..<pairs {
                    futures.append(client.send(["SET", "k_\(index)", String(index)]))
                    futures.append(client.send(["GET", "k_\(index)"]))
                }
                return EventLoopFuture.whenAllSucceed(futures, on: client.eventLoop)
            }
            print("RedisClient soak: \(pairs) SET + \(pairs) GET interleaved in \(elapsed(since: start))")
            #expect(replies.count == 2 * pairs)
            let firstWrong = (0..<pairs).first {
                replies[2 * $0] != .simpleString("OK") || replies[2 * $0 + 1] != .bulk(String($0))
            }
            #expect(firstWrong == nil, "pair \(firstWrong ?? -1) is wrong")
            #expect(try await client.send(["DBSIZE"]) == .integer(Int64(pairs)))
            await client.close()
        }
    }

    @Test func evaluateRunsScriptsAndSurvivesScriptFlush() async throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        try await withEventLoop { loop async throws in
            let client = LoopClient(redisSettings(server), on: loop)
            let script = "return redis.call('INCRBY', KEYS[1], ARGV[1]) * tonumber(ARGV[2])"
            func evaluate(_ increment: Int) async throws -> RESPValue {
                try await client.run {
                    $0.evaluate(script: script, keys: ["script:counter"], arguments: [String(increment), "10"])
                }
            }

            var sent = try await client.commandsSent
            #expect(try await evaluate(5) == .integer(50))
            #expect(try await client.commandsSent - sent == 2, "first use: SCRIPT LOAD + EVALSHA")

            sent = try await client.commandsSent
            #expect(try await evaluate(2) == .integer(70))
            #expect(try await client.commandsSent - sent == 1, "cached: EVALSHA only")

            #expect(try await client.send(["SCRIPT", "FLUSH"]) == .simpleString("OK"))
            sent = try await client.commandsSent
            #expect(try await evaluate(3) == .integer(100))
            #expect(try await client.commandsSent - sent == 3, "after flush: EVALSHA (NOSCRIPT), SCRIPT LOAD, EVALSHA")
            #expect(try await client.send(["GET", "script:counter"]) == .bulk("10"))

            // Back to the cached path, and a different script is loaded on its own.
            sent = try await client.commandsSent
            #expect(try await evaluate(1) == .integer(110))
            #expect(try await client.commandsSent - sent == 1)
            let other = try await client.run { $0.evaluate(script: "return ARGV[1]", keys: [], arguments: ["x"]) }
            #expect(other == .bulk("x"))

            // A script that raises is a server error, not NOSCRIPT in disguise.
            let failed = await redisError {
                _ = try await client.run {
                    $0.evaluate(script: "return redis.error_reply('BOOM no')", keys: [], arguments: [])
                }
            }
            if case .server(let message) = failed {
                #expect(message.contains("BOOM"), "message: \(message)")
            } else {
                Issue.record("expected .server, got \(String(describing: failed))")
            }
            await client.close()
        }
    }

    @Test func authWithPassword() async throws {
        let server = try RedisServer.start(arguments: ["--requirepass", "secret"])
        defer { server.stop() }
        try await withEventLoop { loop async throws in
            let client = LoopClient(redisSettings(server, password: "secret"), on: loop)
            #expect(try await client.send(["SET", "auth:k", "v"]) == .simpleString("OK"))
            #expect(try await client.send(["GET", "auth:k"]) == .bulk("v"))
            await client.close()

            let wrong = LoopClient(redisSettings(server, password: "not-the-secret"), on: loop)
            let wrongError = await redisError { _ = try await wrong.send(["GET", "auth:k"]) }
            #expect(wrongError != nil)
            await wrong.close()

            let none = LoopClient(redisSettings(server), on: loop)
            let noneError = await redisError { _ = try await none.send(["GET", "auth:k"]) }
            if case .server(let message) = noneError {
                #expect(message.hasPrefix("NOAUTH"), "message: \(message)")
            } else {
                Issue.record("expected .server(NOAUTH...), got \(String(describing: noneError))")
            }
            await none.close()
        }
    }

    @Test func authWithACLUser() async throws {
        let server = try RedisServer.start(arguments: ["--requirepass", "secret"])
        defer { server.stop() }
        try await withEventLoop { loop async throws in
            let admin = LoopClient(redisSettings(server, password: "secret"), on: loop)
            #expect(try await admin.send(["ACL", "SETUSER", "gw", "on", ">pw", "~*", "+@all"]) == .simpleString("OK"))

            let user = LoopClient(redisSettings(server, username: "gw", password: "pw"), on: loop)
            #expect(try await user.send(["ACL", "WHOAMI"]) == .bulk("gw"))
            #expect(try await user.send(["SET", "acl:k", "v"]) == .simpleString("OK"))
            #expect(try await admin.send(["GET", "acl:k"]) == .bulk("v"))
            await user.close()

            let wrongPassword = LoopClient(redisSettings(server, username: "gw", password: "secret"), on: loop)
            #expect(await redisError { _ = try await wrongPassword.send(["PING"]) } != nil)
            await wrongPassword.close()

            let unknownUser = LoopClient(redisSettings(server, username: "nobody", password: "pw"), on: loop)
            #expect(await redisError { _ = try await unknownUser.send(["PING"]) } != nil)
            await unknownUser.close()
            await admin.close()
        }
    }

    @Test func selectedDatabaseIsUsedAndReselectedAfterReconnect() async throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        try await withEventLoop { loop async throws in
            let db3 = LoopClient(redisSettings(server, database: 3), on: loop)
            let db0 = LoopClient(redisSettings(server), on: loop)
            #expect(try await db3.send(["SET", "selected", "three"]) == .simpleString("OK"))
            #expect(try await db0.send(["GET", "selected"]) == .null)
            #expect(try await db0.send(["DBSIZE"]) == .integer(0))
            let otherDB3 = LoopClient(redisSettings(server, database: 3), on: loop)
            #expect(try await otherDB3.send(["GET", "selected"]) == .bulk("three"))

            // Drop db3's connection from the server side: the reconnect selects db 3 again.
            guard case .integer(let id) = try await db3.send(["CLIENT", "ID"]) else {
                Issue.record("CLIENT ID did not return an integer")
                return
            }
            #expect(try await db0.send(["CLIENT", "KILL", "ID", String(id)]) == .integer(1))
            var written = false
            for _ in 0..<50 where !written {
                written = (try? await db3.send(["SET", "after-reconnect", "yes"])) == .simpleString("OK")
                if !written { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(written)
            #expect(try await db0.send(["EXISTS", "after-reconnect"]) == .integer(0))
            #expect(try await otherDB3.send(["GET", "after-reconnect"]) == .bulk("yes"))
            for client in [db3, db0, otherDB3] { await client.close() }
        }
    }

    /// A Unix socket endpoint (socket only, mode 700), with a password. The password makes the
    /// handshake asynchronous, which keeps this test clear of the synchronous-connect bug
    /// covered by `unixSocketEndpointWithoutHandshake`.
    @Test func unixSocketEndpoint() async throws {
        let server = try RedisServer.start(unixSocket: true, arguments: ["--requirepass", "secret"])
        defer { server.stop() }
        let path = try #require(server.unixSocketPath)
        let permissions = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(permissions == 0o700)
        try await withEventLoop { loop async throws in
            let client = LoopClient(redisSettings(server, password: "secret"), on: loop)
            #expect(client.client.settings.endpoint == .unix(path: path))
            #expect(try await client.send(["SET", "unix:k", "v"]) == .simpleString("OK"))
            #expect(try await client.send(["GET", "unix:k"]) == .bulk("v"))
            // The server listens on the socket only.
            #expect(try await client.send(["CONFIG", "GET", "port"]) == .array([.bulk("port"), .bulk("0")]))
            await client.close()
        }
    }

    /// A Unix socket endpoint with no AUTH and database 0: the connect, and so the whole
    /// connection future, completes synchronously on the loop. Run in a child process (this
    /// test binary, filtered to `unixSocketChildBody`), because the bug it covers crashes the
    /// process: see `unixSocketChildBody`.
    @Test func unixSocketEndpointWithoutHandshake() async throws {
        let server = try RedisServer.start(unixSocket: true)
        defer { server.stop() }
        let path = try #require(server.unixSocketPath)
        let child = try runThisTestBinary(filter: "unixSocketChildBody", environment: [childSocketVariable: path])
        // Regression: a connect that completes synchronously must not be overwritten by
        // the "connecting" state (that made `send` recurse until the stack overflowed).
        #expect(child.succeeded, "child test process: \(child.summary)")
    }

    @Test(
        .enabled(
            if: ProcessInfo.processInfo.environment[childSocketVariable] != nil,
            "child process of unixSocketEndpointWithoutHandshake"
        )
    )
    func unixSocketChildBody() async throws {
        let path = try #require(ProcessInfo.processInfo.environment[childSocketVariable])
        try await withEventLoop { loop async throws in
            let client = LoopClient(RedisSettings(endpoint: .unix(path: path)), on: loop)
            #expect(try await client.send(["SET", "unix:k", "v"]) == .simpleString("OK"))
            #expect(try await client.send(["GET", "unix:k"]) == .bulk("v"))
            await client.close()
        }
    }

    /// SIGKILL the server: commands fail fast (`.unavailable`, or `.connectionClosed` for one
    /// caught on the dying connection) instead of hanging; after a restart on the same port
    /// the same client recovers within 2 s (back-off is capped at 1 s).
    @Test func outageFailsFastAndRecoversWithoutANewClient() async throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        try await withEventLoop { loop async throws in
            let client = LoopClient(redisSettings(server, commandTimeout: .milliseconds(500)), on: loop)
            let recovered = try await outageAndRestart(
                server: server,
                client: client,
                commandTimeout: .milliseconds(500)
            )
            #expect(recovered != nil, "the client never reconnected after the restart")
            #expect(recovered.map { $0 < .seconds(2) } ?? false, "recovered after \(String(describing: recovered))")
            // A fresh server: the data is gone, the connection works.
            #expect(try await client.send(["GET", "before"]) == .null)
            #expect(try await client.send(["SET", "after", "outage"]) == .simpleString("OK"))
            await client.close()
        }
    }

    /// The same outage on a Unix socket: reconnecting to a socket without a listener fails
    /// synchronously (ECONNREFUSED/ENOENT at connect).
    @Test func unixSocketOutageRecovers() async throws {
        let server = try RedisServer.start(unixSocket: true, arguments: ["--requirepass", "secret"])
        defer { server.stop() }
        try await withEventLoop { loop async throws in
            let client = LoopClient(redisSettings(server, password: "secret"), on: loop)
            let recovered = try await outageAndRestart(
                server: server,
                client: client,
                commandTimeout: .milliseconds(500)
            )
            // Regression: a connect that fails synchronously must leave the client backing
            // off (and so reconnecting), not stuck on the failed attempt.
            #expect(recovered.map { $0 < .seconds(2) } ?? false, "recovered after \(String(describing: recovered))")
            await client.close()
        }
    }

    @Test func closeIsForGood() async throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        try await withEventLoop { loop async throws in
            let client = LoopClient(redisSettings(server), on: loop)
            #expect(try await client.send(["PING"]) == .simpleString("PONG"))
            await client.close()
            #expect(await redisError { _ = try await client.send(["PING"]) } == .unavailable)
            let isConnected = try await client.run { $0.eventLoop.makeSucceededFuture($0.isConnected) }
            #expect(!isConnected)
        }
    }

    /// `close()` while the first connection is still being made: the connection that
    /// completes afterwards must not bring the client back to life.
    @Test func closeWhileConnectingIsForGood() async throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        try await withEventLoop { loop async throws in
            let client = LoopClient(redisSettings(server), on: loop)
            let admin = LoopClient(redisSettings(server), on: loop)
            _ = try await admin.send(["CLIENT", "SETNAME", "admin"])
            let first: Result<RESPValue, RedisClientError> = try await client.run { client in
                let reply = client.send(["PING"])
                client.close()
                return reply.map { .success($0) }.recover {
                    .failure(($0 as? RedisClientError) ?? .protocolError("\($0)"))
                }
            }
            try await Task.sleep(for: .milliseconds(200))
            let isConnected = try await client.run { $0.eventLoop.makeSucceededFuture($0.isConnected) }
            var later: RedisClientError?
            do {
                _ = try await client.send(["PING"])
            } catch {
                later = error as? RedisClientError
            }
            guard case .bulkString(let list) = try await admin.send(["CLIENT", "LIST"]) else {
                Issue.record("CLIENT LIST did not return a bulk string")
                return
            }
            let connections = String(decoding: list, as: UTF8.self).split(separator: "\n").count
            // A client closed while connecting stays closed when the connect completes.
            #expect(!isConnected, "closed client is connected again (first command: \(first))")
            #expect(later == .unavailable)
            #expect(connections == 1, "connections to the server: \(connections)")
            await client.close()
            await admin.close()
        }
    }

    @Test func unreachableServerFailsWithUnavailable() async throws {
        let port = try freeLoopbackPort()
        try await withEventLoop { loop async throws in
            let client = LoopClient(RedisSettings(endpoint: .tcp(host: "127.0.0.1", port: port)), on: loop)
            for _ in 0..<3 {
                let start = ContinuousClock.now
                #expect(await redisError { _ = try await client.send(["PING"]) } == .unavailable)
                #expect(elapsed(since: start) < TestTimeScale.scaled(.milliseconds(500)))
            }
            await client.close()
            // A closed client refuses commands.
            #expect(await redisError { _ = try await client.send(["PING"]) } == .unavailable)
        }
    }

    /// `CLIENT PAUSE 2000 ALL` from an admin connection: a GET with a 200 ms timeout fails
    /// with `.timeout` after about 200 ms, not 2 s; once the pause ends the client recovers.
    @Test func commandTimeout() async throws {
        let server = try RedisServer.start()
        defer { server.stop() }
        try await withEventLoop { loop async throws in
            let client = LoopClient(redisSettings(server, commandTimeout: .milliseconds(200)), on: loop)
            let admin = LoopClient(redisSettings(server), on: loop)
            #expect(try await client.send(["SET", "paused", "no"]) == .simpleString("OK"))
            #expect(try await admin.send(["CLIENT", "PAUSE", "2000", "ALL"]) == .simpleString("OK"))
            let pausedAt = ContinuousClock.now

            let start = ContinuousClock.now
            let error = await redisError { _ = try await client.send(["GET", "paused"]) }
            let took = elapsed(since: start)
            print("RedisClient timeout: GET failed with \(String(describing: error)) after \(took)")
            #expect(error == .timeout)
            #expect(took >= .milliseconds(180))
            #expect(took < .milliseconds(200) + TestTimeScale.scaled(.milliseconds(500)))

            // Recovery after the pause: the timed-out connection was dropped, a new one works.
            var recovered = false
            while !recovered && elapsed(since: pausedAt) < .seconds(5) {
                recovered = (try? await client.send(["GET", "paused"])) == .bulk("no")
                if !recovered { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(recovered)
            await client.close()
            await admin.close()
        }
    }
}
