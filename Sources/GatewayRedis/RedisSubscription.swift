package import GatewayConfig
package import Logging
package import NIOCore

/// One long-lived pub/sub subscription to one channel (the revocation channel): it runs
/// `RedisSubscriptionStateMachine`'s actions on a connection of its own (plain `SUBSCRIBE`
/// on one Redis or the Sentinel-named primary; `SSUBSCRIBE` on the primary serving the
/// channel's slot on a cluster, falling back to `SUBSCRIBE` before Redis 7) and hands every
/// message to `onMessage`.
///
/// It reconnects by itself (50 ms back-off doubling to 1 s), at once when a cluster node
/// ends the subscription because the slot moved, when Sentinel announces a new primary, or
/// when another connection of the process recovers. `onSubscribed` runs after every
/// (re)subscription: what was published while it was away was missed. Lives on one event
/// loop; `start` and `stop` hop onto it, the callbacks run on it.
package final class RedisSubscription: Sendable {
    /// A subscription confirmed by Redis.
    package struct Subscribed: Sendable, Hashable {
        package var node: RedisSettings.Endpoint
        /// `SSUBSCRIBE` (cluster, Redis 7) rather than `SUBSCRIBE`.
        package var sharded: Bool
        /// The first since `start`.
        package var first: Bool
    }

    private let eventLoop: any EventLoop
    private let settings: RedisSettings
    private let connector: RedisConnector
    private let events: RedisNodeEvents?
    private let logger: Logger
    private let onMessage: @Sendable ([UInt8]) -> Void
    private let onSubscribed: @Sendable (Subscribed) -> Void
    private let state: NIOLoopBoundBox<State>

    private struct State {
        var machine: RedisSubscriptionStateMachine
        /// The connection of the attempt in progress or of the subscription.
        var channel: (any Channel)?
        var stopped = false
        var delay: TimeAmount = .zero
        var subscribedOnce = false
        var retry: Scheduled<Void>?
        var opener: RedisNodeOpener?
        var listener: UInt64?
    }

    package init(
        eventLoop: any EventLoop,
        settings: RedisSettings,
        channel: String,
        connector: @escaping RedisConnector,
        events: RedisNodeEvents?,
        logger: Logger,
        onMessage: @escaping @Sendable ([UInt8]) -> Void,
        onSubscribed: @escaping @Sendable (Subscribed) -> Void
    ) {
        self.eventLoop = eventLoop
        self.settings = settings
        self.connector = connector
        self.events = events
        self.logger = logger
        self.onMessage = onMessage
        self.onSubscribed = onSubscribed
        let machine = RedisSubscriptionStateMachine(channel: channel, cluster: settings.cluster != nil)
        self.state = NIOLoopBoundBox.makeBoxSendingValue(State(machine: machine), eventLoop: eventLoop)
    }

    package func start() {
        self.eventLoop.execute {
            self.state.value.opener = RedisNodeOpener(
                eventLoop: self.eventLoop,
                settings: self.settings,
                connector: self.connector,
                events: self.events
            )
            self.state.value.listener = self.events?.register { notice in
                self.eventLoop.execute { self.heard(notice) }
            }
            self.connect()
        }
    }

    package func stop() {
        self.eventLoop.execute {
            self.state.value.stopped = true
            self.state.value.retry?.cancel()
            self.state.value.channel?.close(promise: nil)
            if let listener = self.state.value.listener { self.events?.unregister(listener) }
        }
    }

    /// A new primary: leave the old one now; another connection recovered, or the cluster's
    /// primaries changed (its node's replica may have been promoted): stop waiting.
    private func heard(_ notice: RedisNodeEvents.Notice) {
        guard !self.state.value.stopped else { return }
        if case .primarySwitched(let primary) = notice, self.state.value.opener?.primarySwitched(to: primary) == true {
            self.state.value.channel?.close(promise: nil)
            return
        }
        if self.state.value.machine.isIdle {
            self.state.value.retry?.cancel()
            self.state.value.delay = .zero
            self.connect()
        }
    }

    private func connect() {
        guard !self.state.value.stopped, self.state.value.machine.isIdle else { return }
        self.run(self.state.value.machine.begin())
    }

    private func run(_ action: RedisSubscriptionStateMachine.Action) {
        guard !self.state.value.stopped else {
            self.detach()
            return
        }
        switch action {
        case .openDefault:
            guard let opener = self.state.value.opener else { return }
            self.opened(opener.open(initializer: self.initializer))
        case .openNode(let node):
            self.detach()
            guard let opener = self.state.value.opener else { return }
            self.opened(opener.open(node: node, initializer: self.initializer))
        case .readMap(let node):
            guard let channel = self.state.value.channel else { return }
            self.readMap(on: channel, from: node).assumeIsolated().whenComplete { result in
                guard self.state.value.channel === channel else { return }
                switch result {
                case .success(let map): self.run(self.state.value.machine.mapRead(map))
                case .failure(let error): self.run(self.state.value.machine.failed("reading the slot map: \(error)"))
                }
            }
        case .send(let command):
            self.send(command)
        case .fallBack(let node, let command):
            self.events?.shardedPubSubUnavailable(on: node)
            self.send(command)
        case .subscribed(let node, let sharded):
            self.state.value.delay = .zero
            let first = !self.state.value.subscribedOnce
            self.state.value.subscribedOnce = true
            self.events?.answered(by: node)
            self.onSubscribed(Subscribed(node: node, sharded: sharded, first: first))
        case .deliver(let payload):
            self.onMessage(payload)
        case .resubscribe(let reason):
            self.logger.notice("Redis pub/sub subscription moves: \(reason)")
            self.detach()
            self.state.value.retry?.cancel()
            self.connect()
        case .fail(let reason):
            self.logger.debug("Redis pub/sub subscription attempt failed: \(reason)")
            // A connection that opened and then failed: the next attempt starts elsewhere (the
            // next seed, the sentinels again). A failed open already moved the opener on.
            if self.state.value.channel != nil { self.state.value.opener?.connectionLost() }
            self.detach()
            self.retry()
        case .ignore(let reason):
            if let reason { self.logger.warning("ignored \(reason)") }
        }
    }

    /// The pipeline of every connection: pushes from the current one go to the machine.
    private var initializer: @Sendable (any Channel) -> EventLoopFuture<Void> {
        { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(
                    RedisChannelHandler(onPush: { [weak channel] value in
                        guard let channel else { return }
                        self.pushed(value, on: channel)
                    })
                )
            }
        }
    }

    private func pushed(_ value: RESPValue, on channel: any Channel) {
        guard self.state.value.channel === channel else { return }
        self.run(self.state.value.machine.pushed(value))
    }

    private func opened(_ future: EventLoopFuture<RedisNodeOpener.Opened>) {
        future.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let opened):
                guard !self.state.value.stopped else {
                    opened.channel.close(promise: nil)
                    return
                }
                let channel = opened.channel
                self.state.value.channel = channel
                channel.closeFuture.assumeIsolated().whenComplete { _ in self.closed(channel) }
                self.run(self.state.value.machine.opened(opened.endpoint))
            case .failure(let error):
                self.run(self.state.value.machine.failed("\(error)"))
            }
        }
    }

    /// Only a subscribed connection's loss is handled here: during an attempt the command
    /// waiting on it fails and says so.
    private func closed(_ channel: any Channel) {
        guard self.state.value.channel === channel, self.state.value.machine.isSubscribed else { return }
        self.state.value.channel = nil
        self.state.value.machine.connectionLost()
        self.state.value.opener?.connectionLost()
        self.retry()
    }

    /// Forgets the connection in hand and closes it.
    private func detach() {
        let channel = self.state.value.channel
        self.state.value.channel = nil
        channel?.close(promise: nil)
    }

    private func send(_ command: [String]) {
        guard let channel = self.state.value.channel else { return }
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        channel.writeAndFlush(
            RedisRequest(bytes: channel.allocator.buffer(bytes: RESPCommand.encode(command)), promise: promise),
            promise: nil
        )
        let timeout = self.eventLoop.scheduleTask(in: self.settings.commandTimeout.timeAmount) {
            channel.close(promise: nil)
        }
        promise.futureResult.assumeIsolated().whenComplete { result in
            timeout.cancel()
            guard self.state.value.channel === channel else { return }
            switch result {
            case .success(let reply): self.run(self.state.value.machine.replied(reply))
            case .failure(let error): self.run(self.state.value.machine.failed("\(command[0]): \(error)"))
            }
        }
    }

    /// `CLUSTER SHARDS`, or `CLUSTER SLOTS` where that is unknown (before Redis 7), on the
    /// connection to `node`.
    private func readMap(
        on channel: any Channel,
        from node: RedisSettings.Endpoint
    ) -> EventLoopFuture<ClusterSlotMap> {
        let budget = self.settings.commandTimeout.timeAmount
        let useTLSPort = self.settings.tls != nil
        return RedisNodeOpener.exchange([["CLUSTER", "SHARDS"]], on: channel, budget: budget).flatMapThrowing {
            try ClusterSlotMap.fromShards($0.last ?? .null, useTLSPort: useTLSPort, answeredBy: node)
        }.flatMapError { error in
            guard case RedisClientError.server = error else { return channel.eventLoop.makeFailedFuture(error) }
            return RedisNodeOpener.exchange([["CLUSTER", "SLOTS"]], on: channel, budget: budget).flatMapThrowing {
                try ClusterSlotMap.fromSlots($0.last ?? .null, answeredBy: node)
            }
        }
    }

    private func retry() {
        guard !self.state.value.stopped else { return }
        let delay = self.state.value.delay == .zero ? .milliseconds(50) : min(self.state.value.delay * 2, .seconds(1))
        self.state.value.delay = delay
        self.state.value.retry?.cancel()
        self.state.value.retry = self.eventLoop.assumeIsolated().scheduleTask(in: delay) { self.connect() }
    }
}
