package import GatewayConfig
package import GatewayCore
package import NIOCore

/// Opens a connection to a Redis endpoint on an event loop (with TLS when `tls` is set, the
/// future completing after the handshake) and runs `initializer` on the channel. Supplied by
/// the server module (which owns NIOPosix and the TLS client) or by tests.
package typealias RedisConnector =
    @Sendable (
        _ eventLoop: any EventLoop,
        _ endpoint: RedisSettings.Endpoint,
        _ tls: RedisSettings.TLS?,
        _ connectTimeout: TimeAmount,
        _ initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<any Channel>

/// The Redis connection of one event loop: every command from that loop is pipelined on
/// it, replies matched in order.
///
/// It connects lazily through a `RedisNodeOpener` (which finds the node: the configured
/// server, or in Sentinel mode the primary the sentinels name), authenticates (`AUTH`, with
/// an ACL user when configured) and selects the database; after a failure it backs off
/// exponentially (50 ms doubling, at most 1 s) and during back-off fails commands at once
/// with `.unavailable` instead of queueing them, so an outage turns into fast 503s, not
/// hanging requests. Every command has a deadline; a command that misses it fails with
/// `.timeout` and the connection is dropped, as a Redis that stopped answering cannot be
/// trusted to answer in order.
///
/// In Sentinel mode a `READONLY`/`MASTERDOWN` reply drops the connection so the next command
/// asks the sentinels again; a `+switch-master` heard through `events` moves it to the new
/// primary at once, and any connection of the process recovering ends this one's back-off.
/// Touched only on its event loop.
package final class RedisClient {
    private enum State {
        case idle
        case connecting(EventLoopFuture<Void>)
        case connected(any Channel)
        case backingOff(until: NIODeadline, delay: TimeAmount)
        case closed
    }

    package let eventLoop: any EventLoop
    package let settings: RedisSettings
    private let opener: RedisNodeOpener
    private let events: RedisNodeEvents?
    private var listener: UInt64?
    /// In cluster mode every command goes through it (and this client holds no connection).
    private var router: ClusterRouter?
    /// Reconnect backoffs are measured on its monotonic view.
    private let clock: GatewayClock
    private var state: State = .idle
    /// A connection was lost or refused since the last success (for `recovered`).
    private var failedSinceConnected = false
    /// The node of the current connection.
    package private(set) var node: RedisNodeEvents.Node?
    /// The current connection has answered a command (reported to `events` once).
    private var answeredOnConnection = false
    /// Loaded scripts and their SHA1s. A short list searched with `==`, not a dictionary:
    /// the scripts are static strings, and comparing a string with itself is a pointer
    /// check, whereas a dictionary would hash a kilobyte of Lua on every EVALSHA.
    private var scriptHashes: [(script: String, sha: String)] = []
    private var inFlight: CircularBuffer<InFlight> = CircularBuffer(initialCapacity: 16)
    /// Due when the oldest command in flight is.
    private lazy var commandDeadline = LoopTimer { [weak self] in self?.oldestCommandDue() }
    private var flushScheduled = false
    private var channelsToFlush: [any Channel] = []
    /// Commands sent since start (for tests and metrics).
    package private(set) var commandsSent = 0

    private static let initialBackoff = TimeAmount.milliseconds(50)
    private static let maximumBackoff = TimeAmount.seconds(1)

    /// - Parameter events: the process's node news (failovers, recoveries) and refusal log;
    ///   nil for a short-lived client (the CLI).
    package init(
        eventLoop: any EventLoop,
        settings: RedisSettings,
        connector: @escaping RedisConnector,
        clock: GatewayClock,
        events: RedisNodeEvents? = nil
    ) {
        self.clock = clock
        self.eventLoop = eventLoop
        self.settings = settings
        self.opener = RedisNodeOpener(eventLoop: eventLoop, settings: settings, connector: connector, events: events)
        self.events = events
        if let cluster = settings.cluster {
            self.router = ClusterRouter(
                eventLoop: eventLoop,
                settings: settings,
                cluster: cluster,
                connector: connector,
                clock: clock,
                events: events
            )
            return
        }
        if let events {
            let weak = NIOLoopBound(WeakClient(self), eventLoop: eventLoop)
            self.listener = events.register { notice in
                eventLoop.execute { weak.value.client?.heard(notice) }
            }
        }
    }

    /// What `events` registers: a client that was closed and released hears nothing.
    private final class WeakClient {
        weak var client: RedisClient?
        init(_ client: RedisClient) { self.client = client }
    }

    /// News from another connection: a new primary (drop a connection elsewhere), or a
    /// recovery (end the back-off: Redis answers again).
    private func heard(_ notice: RedisNodeEvents.Notice) {
        switch notice {
        case .primarySwitched(let primary):
            let mustDrop = self.opener.primarySwitched(to: primary)
            if mustDrop, case .connected(let channel) = self.state {
                channel.close(promise: nil)
            }
            if case .backingOff = self.state {
                self.state = .backingOff(until: self.clock.now(), delay: .zero)
            }
        case .recovered:
            if case .backingOff = self.state {
                self.state = .backingOff(until: self.clock.now(), delay: .zero)
            }
        case .clusterPrimariesChanged:
            // A connection to one cluster node: its node is the same whatever the map says
            // (the router stops sending to a node the map no longer names).
            break
        }
    }

    package var isConnected: Bool {
        if let router = self.router { return router.isConnected }
        if case .connected(let channel) = self.state { return channel.isActive }
        return false
    }

    /// Sends one command; the future completes on this loop with the reply. An error
    /// reply (`-ERR`) fails the future with `.server`.
    package func send(_ arguments: [[UInt8]]) -> EventLoopFuture<RESPValue> {
        self.eventLoop.preconditionInEventLoop()
        if let router = self.router {
            return router.send(arguments, route: ClusterCommandKeys.route(of: arguments))
        }
        switch self.state {
        case .connected(let channel) where channel.isActive:
            return self.write(arguments, on: channel)
        case .connected, .idle:
            return self.connect().assumeIsolated().flatMap { self.send(arguments) }.nonisolated()
        case .connecting(let future):
            return future.assumeIsolated().flatMap { self.send(arguments) }.nonisolated()
        case .backingOff(let until, _):
            if self.clock.now() >= until {
                return self.connect().assumeIsolated().flatMap { self.send(arguments) }.nonisolated()
            }
            return self.eventLoop.makeFailedFuture(RedisClientError.unavailable)
        case .closed:
            return self.eventLoop.makeFailedFuture(RedisClientError.unavailable)
        }
    }

    package func send(_ arguments: [String]) -> EventLoopFuture<RESPValue> {
        self.send(arguments.map { Array($0.utf8) })
    }

    /// Runs a Lua script by `EVALSHA`, loading it first (and again after `NOSCRIPT`,
    /// e.g. when Redis restarted or was flushed).
    package func evaluate(script: String, keys: [String], arguments: [String]) -> EventLoopFuture<RESPValue> {
        let tail = [String(keys.count)] + keys + arguments
        guard let sha = self.scriptHashes.first(where: { $0.script == script })?.sha else {
            return self.loadAndEvaluate(script: script, keys: keys, tail: tail)
        }
        return self.send(["EVALSHA", sha] + tail).assumeIsolated().flatMapError { error in
            if case RedisClientError.server(let message) = error, message.hasPrefix("NOSCRIPT") {
                self.scriptHashes.removeAll { $0.script == script }
                return self.loadAndEvaluate(script: script, keys: keys, tail: tail)
            }
            return self.eventLoop.makeFailedFuture(error)
        }.nonisolated()
    }

    /// On a cluster `SCRIPT LOAD` goes to the node the script's keys live on, where the
    /// `EVALSHA` will run.
    private func loadAndEvaluate(script: String, keys: [String], tail: [String]) -> EventLoopFuture<RESPValue> {
        let load = [Array("SCRIPT".utf8), Array("LOAD".utf8), Array(script.utf8)]
        let loaded =
            self.router.map { $0.send(load, route: ClusterCommandKeys.route(ofKeys: keys.map { Array($0.utf8) })) }
            ?? self.send(load)
        return loaded.assumeIsolated().flatMap { reply in
            guard case .bulkString(let bytes) = reply else {
                return self.eventLoop.makeFailedFuture(
                    RedisClientError.protocolError("SCRIPT LOAD did not return a hash")
                )
            }
            let sha = String(decoding: bytes, as: UTF8.self)
            self.scriptHashes.removeAll { $0.script == script }
            self.scriptHashes.append((script, sha))
            return self.send(["EVALSHA", sha] + tail)
        }.nonisolated()
    }

    /// Publishes `message` on `channel`: `PUBLISH`, or on a cluster `SPUBLISH` to the primary
    /// serving the channel's slot, where the revocation subscription listens (sharded
    /// pub/sub, Redis 7). A node that does not know `SPUBLISH` gets `PUBLISH`, as the
    /// subscription falls back to `SUBSCRIBE` there; tried again each time (revocations are
    /// rare), so an upgraded cluster is used as such.
    package func publish(channel: String, message: String) -> EventLoopFuture<RESPValue> {
        guard self.router != nil else { return self.send(["PUBLISH", channel, message]) }
        return self.send(["SPUBLISH", channel, message]).assumeIsolated().flatMapError { error in
            guard case RedisClientError.server(let text) = error, RedisSubscriptionStateMachine.isUnknownCommand(text)
            else { return self.eventLoop.makeFailedFuture(error) }
            self.events?.shardedPubSubUnavailable(on: nil)
            return self.send(["PUBLISH", channel, message])
        }.nonisolated()
    }

    /// How a script whose keys are `keys` announces on `channel` (an argument the script
    /// tests, see `RedisOpaqueAccessTokenStore`): `PUBLISH`; on a cluster `SPUBLISH` (the
    /// script falls back to `PUBLISH` where it is unknown), or "" when the channel's slot is
    /// not the keys' (a script may only touch its own slot): the caller then publishes after
    /// the script with `publish`.
    package func scriptPublishCommand(channel: String, keys: [String]) -> String {
        guard self.router != nil else { return "PUBLISH" }
        let slot = ClusterSlot.of(channel)
        return keys.allSatisfy { ClusterSlot.of($0) == slot } ? "SPUBLISH" : ""
    }

    /// The primaries of the cluster's slot map, in the order the map names them (the first
    /// answers keyless commands); empty before the map is read or when not on a cluster.
    package var clusterPrimaries: [RedisSettings.Endpoint] { self.router?.map?.nodes ?? [] }

    /// The cluster primaries this client is connected to (empty when not on a cluster).
    package var clusterNodesConnected: [RedisSettings.Endpoint] { self.router?.connectedNodes ?? [] }

    /// Closes the connection for good.
    package func close() {
        self.eventLoop.preconditionInEventLoop()
        self.router?.close()
        if let listener = self.listener {
            self.events?.unregister(listener)
            self.listener = nil
        }
        if case .connected(let channel) = self.state {
            channel.close(promise: nil)
        }
        self.state = .closed
    }

    // MARK: internals

    private func write(_ arguments: [[UInt8]], on channel: any Channel) -> EventLoopFuture<RESPValue> {
        self.commandsSent += 1
        let encoded = RESPCommand.encode(arguments)
        var buffer = channel.allocator.buffer(capacity: encoded.count)
        buffer.writeBytes(encoded)
        let replyPromise = self.eventLoop.makePromise(of: RESPValue.self)
        let result = self.eventLoop.makePromise(of: RESPValue.self)
        let command = InFlight(
            deadline: self.eventLoop.now + self.settings.commandTimeout.timeAmount,
            result: result,
            channel: channel
        )
        self.inFlight.append(command)
        if self.commandDeadline.deadline == nil {
            self.commandDeadline.arm(at: command.deadline, on: self.eventLoop)
        }
        replyPromise.futureResult.assumeIsolated().whenComplete { outcome in
            self.finished(result)
            switch outcome {
            case .success(.error(let message)):
                if self.settings.sentinel != nil, SentinelReply.isFailoverError(message) {
                    // This node is no longer the primary: ask the sentinels again.
                    self.opener.connectionLost()
                    channel.close(promise: nil)
                }
                result.fail(RedisClientError.server(message))
            case .success(let value):
                if !self.answeredOnConnection, let node = self.node {
                    self.answeredOnConnection = true
                    self.events?.answered(by: node.endpoint)
                }
                result.succeed(value)
            case .failure(let error):
                if case RedisClientError.tls(let reason) = error {
                    // After the handshake (a TLS 1.3 server refusing our certificate).
                    let node = self.node.map { "\($0.endpoint)" } ?? "Redis"
                    self.events?.refused("\(node): TLS handshake failed: \(reason)")
                }
                result.fail(error)
            }
        }
        channel.write(RedisRequest(bytes: buffer, promise: replyPromise), promise: nil)
        self.scheduleFlush(channel)
        return result.futureResult
    }

    /// A command waiting for its reply, oldest first: Redis answers in order, so only the
    /// oldest deadline needs a timer.
    private struct InFlight {
        let deadline: NIODeadline
        let result: EventLoopPromise<RESPValue>
        let channel: any Channel
    }

    private func finished(_ result: EventLoopPromise<RESPValue>) {
        if let first = self.inFlight.first, first.result.futureResult === result.futureResult {
            self.inFlight.removeFirst()
        } else if let index = self.inFlight.firstIndex(where: { $0.result.futureResult === result.futureResult }) {
            self.inFlight.remove(at: index)
        }
        if let next = self.inFlight.first {
            self.commandDeadline.arm(at: next.deadline, on: self.eventLoop)
        } else {
            self.commandDeadline.disarm()
        }
    }

    private func oldestCommandDue() {
        guard let oldest = self.inFlight.first else { return }
        guard self.eventLoop.now >= oldest.deadline else {
            self.commandDeadline.arm(at: oldest.deadline, on: self.eventLoop)
            return
        }
        oldest.result.fail(RedisClientError.timeout)
        // A Redis that stopped answering cannot be trusted to answer in order: the
        // connection goes, failing every other command on it.
        oldest.channel.close(promise: nil)
    }

    /// Writes are flushed once per event-loop tick, so commands issued together (one
    /// per request of a busy loop) share one `write(2)`.
    private func scheduleFlush(_ channel: any Channel) {
        if !self.channelsToFlush.contains(where: { $0 === channel }) {
            self.channelsToFlush.append(channel)
        }
        guard !self.flushScheduled else { return }
        self.flushScheduled = true
        let loopBound = NIOLoopBound(self, eventLoop: self.eventLoop)
        self.eventLoop.execute {
            let client = loopBound.value
            client.flushScheduled = false
            let channels = client.channelsToFlush
            client.channelsToFlush.removeAll(keepingCapacity: true)
            for channel in channels { channel.flush() }
        }
    }

    private func connect() -> EventLoopFuture<Void> {
        let previousDelay: TimeAmount
        if case .backingOff(_, let delay) = self.state {
            previousDelay = delay
        } else {
            previousDelay = .zero
        }
        // The state must say "connecting" before the connector runs: a Unix-socket
        // connect can complete synchronously, and its callbacks then set the real state.
        let promise = self.eventLoop.makePromise(of: Void.self)
        self.state = .connecting(promise.futureResult)
        self.opener.open { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(RedisChannelHandler())
            }
        }.assumeIsolated().whenComplete { result in
            if case .closed = self.state {
                // Closed while connecting: stay closed.
                if case .success(let opened) = result { opened.channel.close(promise: nil) }
                promise.fail(RedisClientError.unavailable)
                return
            }
            switch result {
            case .success(let opened):
                let channel = opened.channel
                self.state = .connected(channel)
                let node = RedisNodeEvents.Node(endpoint: opened.endpoint, role: opened.role)
                self.node = node
                self.answeredOnConnection = false
                self.events?.connected(to: node, recovered: self.failedSinceConnected)
                self.failedSinceConnected = false
                channel.closeFuture.assumeIsolated().whenComplete { _ in
                    guard case .connected(let current) = self.state, current === channel else { return }
                    self.failedSinceConnected = true
                    self.opener.connectionLost()
                    // Reconnect on the next command, without waiting.
                    self.state = .backingOff(until: self.clock.now(), delay: .zero)
                }
                promise.succeed(())
            case .failure:
                self.failedSinceConnected = true
                let delay =
                    previousDelay == .zero
                    ? Self.initialBackoff : min(previousDelay * 2, Self.maximumBackoff)
                self.state = .backingOff(until: self.clock.now() + delay, delay: delay)
                promise.fail(RedisClientError.unavailable)
            }
        }
        return promise.futureResult
    }

    /// `AUTH` (with the ACL user when configured), if a password is set.
    package static func authenticationCommand(_ settings: RedisSettings) -> [String]? {
        guard let password = settings.password else { return nil }
        return settings.username.map { ["AUTH", $0, password.value] } ?? ["AUTH", password.value]
    }
}
