import GatewayConfig
import GatewayRedis
import Logging
import NIOCore

/// The process's one subscription to the sentinels' `+switch-master` channel (Sentinel
/// mode only): when Sentinel promotes a new primary of `master_name`, every Redis
/// connection of every event loop hears it through `RedisNodeEvents` and moves at once,
/// instead of finding out on its next failed command.
///
/// It listens to one sentinel at a time, moving to the next one (50 ms back-off doubling
/// to 1 s) when that one goes away. Connections find the primary without it (they ask
/// the sentinels whenever they connect); it only makes the switch fast. Lives on one event
/// loop; `start` and `stop` hop onto it.
final class SentinelWatcher: Sendable {
    private let eventLoop: any EventLoop
    private let settings: RedisSettings
    private let sentinel: RedisSettings.Sentinel
    private let connector: RedisConnector
    private let events: RedisNodeEvents
    private let logger: Logger
    private let state: NIOLoopBoundBox<State>

    private struct State {
        var channel: (any Channel)?
        var stopped = false
        var next = 0
        var delay: TimeAmount = .zero
        var retry: Scheduled<Void>?
    }

    init?(
        eventLoop: any EventLoop,
        settings: RedisSettings,
        connector: @escaping RedisConnector,
        events: RedisNodeEvents,
        logger: Logger
    ) {
        guard let sentinel = settings.sentinel else { return nil }
        self.eventLoop = eventLoop
        self.settings = settings
        self.sentinel = sentinel
        self.connector = connector
        self.events = events
        self.logger = logger
        self.state = NIOLoopBoundBox.makeBoxSendingValue(State(), eventLoop: eventLoop)
    }

    func start() {
        self.eventLoop.execute { self.connect() }
    }

    func stop() {
        self.eventLoop.execute {
            self.state.value.stopped = true
            self.state.value.retry?.cancel()
            self.state.value.channel?.close(promise: nil)
        }
    }

    private func connect() {
        guard !self.state.value.stopped else { return }
        let index = self.state.value.next % self.sentinel.nodes.count
        let endpoint = self.sentinel.nodes[index]
        let masterName = self.sentinel.masterName
        let events = self.events
        let onPush: @Sendable (RESPValue) -> Void = { message in
            if let primary = SentinelReply.switchMaster(message, masterName: masterName) {
                events.primarySwitched(to: primary)
            }
        }
        var steps: [[String]] = []
        if let password = self.sentinel.password {
            steps.append(self.sentinel.username.map { ["AUTH", $0, password.value] } ?? ["AUTH", password.value])
        }
        steps.append(["SUBSCRIBE", "+switch-master"])
        let subscription = steps
        let budget = self.settings.commandTimeout.timeAmount
        self.connector(self.eventLoop, endpoint, self.settings.tls, self.settings.connectTimeout.timeAmount) {
            channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(RedisChannelHandler(onPush: onPush))
            }
        }.flatMap { channel in
            RedisNodeOpener.exchange(subscription, on: channel, budget: budget).map { _ in channel }.flatMapError {
                error in
                channel.close(promise: nil)
                return channel.eventLoop.makeFailedFuture(error)
            }
        }.whenComplete { result in
            switch result {
            case .success(let channel):
                self.state.value.channel = channel
                self.state.value.delay = .zero
                channel.closeFuture.whenComplete { _ in
                    self.state.value.channel = nil
                    self.state.value.next = index + 1
                    self.retry()
                }
            case .failure(let error):
                if case RedisClientError.server(let message) = error {
                    events.refused("sentinel \(endpoint): \(message)")
                }
                self.state.value.next = index + 1
                self.retry()
            }
        }
    }

    private func retry() {
        guard !self.state.value.stopped else { return }
        let delay = self.state.value.delay == .zero ? .milliseconds(50) : min(self.state.value.delay * 2, .seconds(1))
        self.state.value.delay = delay
        self.state.value.retry = self.eventLoop.scheduleTask(in: delay) { self.connect() }
    }
}
