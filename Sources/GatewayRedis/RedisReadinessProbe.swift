package import GatewayConfig
package import GatewayCore
package import NIOCore

/// One readiness check of Redis: PING on a connection of its own until it answers or the
/// connect timeout passes (the gateway's start waits for it before reporting ready).
/// Touched only on its event loop.
package final class RedisReadinessProbe {
    /// Who answered `PING`: the start-up status names it, not the configured address (in
    /// Sentinel mode a sentinel, on a cluster a seed node, neither of which is asked).
    package enum Answer: Sendable, Hashable, CustomStringConvertible {
        /// One Redis, or the primary the sentinels named (checked with `ROLE`).
        case node(RedisSettings.Endpoint)
        /// A cluster: its primaries from the slot map, the first the one that answered.
        case cluster(primaries: [RedisSettings.Endpoint])

        package var description: String {
            switch self {
            case .node(let endpoint):
                return "Redis \(endpoint)"
            case .cluster(let primaries):
                let all = primaries.map(\.description).joined(separator: ", ")
                return "Redis \(primaries.first.map(\.description) ?? "?") (cluster primaries: \(all))"
            }
        }
    }

    /// Who answered `PING` within the connect timeout (retrying a refused or failed
    /// connection every 100 ms until then), nil when nobody did. Uses its own short-lived
    /// connection.
    package static func answersPing(
        _ settings: RedisSettings,
        on loop: any EventLoop,
        clock: GatewayClock
    ) async -> Answer? {
        let future = loop.flatSubmit {
            let probe = RedisReadinessProbe(loop: loop, settings: settings, clock: clock)
            probe.start()
            return probe.answered
        }
        return (try? await future.get()) ?? nil
    }

    private let loop: any EventLoop
    private let client: RedisClient
    private let deadline: NIODeadline
    private let promise: EventLoopPromise<Answer?>
    private var timer: Scheduled<Void>?
    private var finished = false

    private var answered: EventLoopFuture<Answer?> { self.promise.futureResult }

    private init(loop: any EventLoop, settings: RedisSettings, clock: GatewayClock) {
        self.loop = loop
        self.client = RedisClient(eventLoop: loop, settings: settings, connector: RedisConnectors.posix, clock: clock)
        // A timer on this loop: its deadline is on the loop's own clock.
        self.deadline = loop.now + settings.connectTimeout.timeAmount
        self.promise = loop.makePromise(of: Answer?.self)
    }

    private func start() {
        self.timer = self.loop.assumeIsolated().scheduleTask(deadline: self.deadline) { self.finish(nil) }
        self.attempt()
    }

    private func attempt() {
        guard !self.finished else { return }
        self.client.send(["PING"]).assumeIsolated().whenComplete { result in
            switch result {
            case .success:
                let primaries = self.client.clusterPrimaries
                if self.client.settings.cluster != nil, !primaries.isEmpty {
                    self.finish(.cluster(primaries: primaries))
                } else {
                    self.finish(.node(self.client.node?.endpoint ?? self.client.settings.endpoint))
                }
            case .failure:
                guard !self.finished else { return }
                self.loop.assumeIsolated().scheduleTask(in: .milliseconds(100)) { self.attempt() }
            }
        }
    }

    private func finish(_ answered: Answer?) {
        guard !self.finished else { return }
        self.finished = true
        self.timer?.cancel()
        self.client.close()
        self.promise.succeed(answered)
    }
}
