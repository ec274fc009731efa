package import GatewayConfig
package import NIOCore

/// Opens one connection to the node the gateway should use and gets it ready for commands:
/// finds the node (the configured server, or in Sentinel mode the primary the sentinels
/// name, checked with `ROLE`; on a cluster a seed node, or the node asked for), connects
/// (through the connector, TLS included), then `AUTH` and `SELECT`.
///
/// Error replies during the handshake (`WRONGPASS ...`, `NOPERM ...`) and TLS failures are
/// reported to `events` with the server's own words. One per connection owner
/// (`RedisClient`, the revocation subscriber); touched only on its event loop.
package final class RedisNodeOpener {
    /// A connection ready for commands.
    package struct Opened {
        package var channel: any Channel
        package var endpoint: RedisSettings.Endpoint
        package var role: SentinelReply.Role?
    }

    /// Why an attempt failed: a message for the log (never a secret).
    package struct Failure: Error, CustomStringConvertible {
        package var description: String
        /// Redis (or a sentinel, or TLS) refused, rather than the network failing.
        package var refused: Bool
    }

    package let eventLoop: any EventLoop
    package let settings: RedisSettings
    private let connector: RedisConnector
    private let events: RedisNodeEvents?
    package private(set) var machine: SentinelStateMachine?
    /// On a cluster (the revocation subscriber's connection: data connections are opened
    /// per node), the seed node tried next; it moves on after a failure, so a dead seed does
    /// not silence revocations while the others run.
    private var seedIndex = 0

    package init(
        eventLoop: any EventLoop,
        settings: RedisSettings,
        connector: @escaping RedisConnector,
        events: RedisNodeEvents?
    ) {
        self.eventLoop = eventLoop
        self.settings = settings
        self.connector = connector
        self.events = events
        self.machine = settings.sentinel.map {
            SentinelStateMachine(sentinelCount: $0.nodes.count, masterName: $0.masterName)
        }
    }

    /// Sentinel announced `primary`; true when the connection in use must be dropped.
    package func primarySwitched(to primary: RedisSettings.Endpoint) -> Bool {
        self.machine?.switchAnnounced(to: primary) ?? false
    }

    /// The connection was lost or the node stopped being the primary.
    package func connectionLost() {
        self.machine?.connectionLost()
        self.seedIndex += 1
    }

    /// One attempt; `initializer` sets the channel's pipeline (the RESP handler).
    package func open(
        initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<Opened> {
        self.eventLoop.preconditionInEventLoop()
        let promise = self.eventLoop.makePromise(of: Opened.self)
        if self.machine != nil {
            self.drive(self.machine!.beginAttempt(), initializer: initializer, promise: promise)
        } else if let seeds = self.settings.cluster?.nodes, !seeds.isEmpty {
            let seed = seeds[self.seedIndex % seeds.count]
            self.openNode(seed, checkRole: false, initializer: initializer).assumeIsolated().whenComplete { result in
                if case .failure = result { self.seedIndex += 1 }
                promise.completeWith(result)
            }
        } else {
            self.openNode(self.settings.endpoint, checkRole: false, initializer: initializer).cascade(to: promise)
        }
        return self.reportingRefusals(promise.futureResult)
    }

    /// Cluster mode: a connection to `node`, a primary the slot map or a `MOVED` named
    /// (the revocation subscription's: data connections are `ClusterRouter`'s).
    package func open(
        node: RedisSettings.Endpoint,
        initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<Opened> {
        self.eventLoop.preconditionInEventLoop()
        return self.reportingRefusals(self.openNode(node, checkRole: false, initializer: initializer))
    }

    private func reportingRefusals(_ future: EventLoopFuture<Opened>) -> EventLoopFuture<Opened> {
        future.assumeIsolated().flatMapErrorThrowing { error in
            if let failure = error as? Failure, failure.refused {
                self.events?.refused(failure.description)
            }
            throw error
        }.nonisolated()
    }

    private func drive(
        _ action: SentinelStateMachine.Action,
        initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>,
        promise: EventLoopPromise<Opened>
    ) {
        switch action {
        case .askSentinel(let index):
            self.askSentinel(index).assumeIsolated().whenComplete { result in
                let next: SentinelStateMachine.Action
                switch result {
                case .success(let answer):
                    next = self.machine!.sentinelAnswered(index, answer)
                case .failure(let error):
                    next = self.machine!.sentinelAnswered(index, nil, reason: "\(error)")
                }
                self.drive(next, initializer: initializer, promise: promise)
            }
        case .connect(let endpoint):
            self.openNode(endpoint, checkRole: true, initializer: initializer).assumeIsolated().whenComplete {
                result in
                switch result {
                case .success(let opened):
                    let next = self.machine!.nodeAnswered(endpoint, role: opened.role)
                    if case .ready = next {
                        promise.succeed(opened)
                    } else {
                        opened.channel.close(promise: nil)
                        self.drive(next, initializer: initializer, promise: promise)
                    }
                case .failure(let error):
                    let refused = (error as? Failure)?.refused ?? false
                    let next = self.machine!.nodeFailed(endpoint, reason: "\(error)")
                    if case .fail(let text, _) = next {
                        promise.fail(Failure(description: text, refused: refused))
                    } else {
                        self.drive(next, initializer: initializer, promise: promise)
                    }
                }
            }
        case .ready:
            promise.fail(Failure(description: "internal: ready without a connection", refused: false))
        case .fail(let text, let refused):
            promise.fail(Failure(description: text, refused: refused))
        }
    }

    /// Connects to `endpoint`, runs the handshake and (Sentinel mode) `ROLE`, within the
    /// connect timeout plus one command timeout.
    private func openNode(
        _ endpoint: RedisSettings.Endpoint,
        checkRole: Bool,
        initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<Opened> {
        var steps: [[String]] = []
        if let auth = RedisClient.authenticationCommand(self.settings) { steps.append(auth) }
        if self.settings.database != 0 { steps.append(["SELECT", String(self.settings.database)]) }
        if checkRole { steps.append(["ROLE"]) }
        let handshake = steps
        let budget = self.settings.commandTimeout.timeAmount
        let loop = self.eventLoop
        return self.connector(
            self.eventLoop,
            endpoint,
            self.settings.tls,
            self.settings.connectTimeout.timeAmount,
            initializer
        ).flatMapError { error in
            loop.makeFailedFuture(Self.connectFailure(endpoint, error))
        }.flatMap { channel in
            Self.exchange(handshake, on: channel, budget: budget).flatMapThrowing { replies -> Opened in
                var role: SentinelReply.Role?
                if checkRole, let last = replies.last { role = SentinelReply.role(last) }
                return Opened(channel: channel, endpoint: endpoint, role: role)
            }.flatMapError { error in
                channel.close(promise: nil)
                if case RedisClientError.tls(let reason) = error {
                    return channel.eventLoop.makeFailedFuture(
                        Failure(description: "\(endpoint): TLS handshake failed: \(reason)", refused: true)
                    )
                }
                guard case RedisClientError.server(let message) = error else {
                    return channel.eventLoop.makeFailedFuture(
                        Failure(description: "\(endpoint): \(error)", refused: false)
                    )
                }
                return channel.eventLoop.makeFailedFuture(
                    Failure(description: "\(endpoint): \(message)", refused: true)
                )
            }
        }
    }

    /// Asks sentinel `index` (with the sentinel credentials) for the primary.
    private func askSentinel(_ index: Int) -> EventLoopFuture<SentinelReply.PrimaryAnswer> {
        guard let sentinel = self.settings.sentinel, sentinel.nodes.indices.contains(index) else {
            return self.eventLoop.makeFailedFuture(Failure(description: "no such sentinel", refused: false))
        }
        let endpoint = sentinel.nodes[index]
        var steps: [[String]] = []
        if let password = sentinel.password {
            steps.append(sentinel.username.map { ["AUTH", $0, password.value] } ?? ["AUTH", password.value])
        }
        steps.append(["SENTINEL", "get-master-addr-by-name", sentinel.masterName])
        let question = steps
        let budget = self.settings.commandTimeout.timeAmount
        let loop = self.eventLoop
        let events = self.events
        return self.connector(
            self.eventLoop,
            endpoint,
            self.settings.tls,
            self.settings.connectTimeout.timeAmount
        ) { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(RedisChannelHandler())
            }
        }.flatMapError { error in
            loop.makeFailedFuture(Self.connectFailure(endpoint, error))
        }.flatMap { channel in
            Self.exchange(question, on: channel, budget: budget).always { _ in
                channel.close(promise: nil)
            }.flatMapErrorThrowing { error in
                if case RedisClientError.server(let message) = error {
                    events?.refused("sentinel \(endpoint): \(message)")
                }
                throw error
            }.map { SentinelReply.primaryAddress($0.last ?? .null) }
        }
    }

    private static func connectFailure(_ endpoint: RedisSettings.Endpoint, _ error: any Error) -> Failure {
        // A failed TLS handshake is the server being refused by us (wrong CA, wrong name) or
        // us by it: worth a log line, unlike a refused TCP connect during an outage.
        if case RedisClientError.tls(let reason) = error {
            return Failure(description: "\(endpoint): TLS handshake failed: \(reason)", refused: true)
        }
        return Failure(description: "\(endpoint): \(error)", refused: false)
    }

    /// Sends `steps` in order on a fresh connection, each after the previous answered; an
    /// error reply fails with `.server`, the whole exchange with `.timeout` past `budget`.
    package static func exchange(
        _ steps: [[String]],
        on channel: any Channel,
        budget: TimeAmount
    ) -> EventLoopFuture<[RESPValue]> {
        let loop = channel.eventLoop
        let timedOut = NIOLoopBoundBox(false, eventLoop: loop)
        let timer = loop.scheduleTask(in: budget) {
            timedOut.value = true
            channel.close(promise: nil)
        }
        var chain = loop.makeSucceededFuture([RESPValue]())
        for step in steps {
            chain = chain.flatMap { replies in
                let promise = loop.makePromise(of: RESPValue.self)
                let bytes = RESPCommand.encode(step)
                channel.writeAndFlush(
                    RedisRequest(bytes: channel.allocator.buffer(bytes: bytes), promise: promise),
                    promise: nil
                )
                return promise.futureResult.flatMapThrowing { reply in
                    if case .error(let message) = reply { throw RedisClientError.server(message) }
                    return replies + [reply]
                }
            }
        }
        let done = chain.flatMapErrorThrowing { error in
            throw timedOut.value ? RedisClientError.timeout : error
        }
        done.whenComplete { _ in timer.cancel() }
        return done
    }
}
