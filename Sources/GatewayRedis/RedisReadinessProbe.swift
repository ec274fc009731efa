package import GatewayConfig
package import GatewayCore
package import NIOCore

/// One readiness check of Redis: PING on a connection of its own until it answers or the
/// connect timeout passes (the gateway's start waits for it before reporting ready).
/// Touched only on its event loop.
package final class RedisReadinessProbe {
    /// Whether Redis answers `PING` within its connect timeout (retrying a refused or
    /// failed connection every 100 ms until then). Uses its own short-lived connection.
    package static func answersPing(
        _ settings: RedisSettings,
        on loop: any EventLoop,
        clock: GatewayClock
    ) async -> Bool {
        let future = loop.flatSubmit {
            let probe = RedisReadinessProbe(loop: loop, settings: settings, clock: clock)
            probe.start()
            return probe.answered
        }
        return (try? await future.get()) ?? false
    }

    private let loop: any EventLoop
    private let client: RedisClient
    private let deadline: NIODeadline
    private let promise: EventLoopPromise<Bool>
    private var timer: Scheduled<Void>?
    private var finished = false

    private var answered: EventLoopFuture<Bool> { self.promise.futureResult }

    private init(loop: any EventLoop, settings: RedisSettings, clock: GatewayClock) {
        self.loop = loop
        self.client = RedisClient(eventLoop: loop, settings: settings, connector: RedisConnectors.posix, clock: clock)
        // A timer on this loop: its deadline is on the loop's own clock.
        self.deadline = loop.now + settings.connectTimeout.timeAmount
        self.promise = loop.makePromise(of: Bool.self)
    }

    private func start() {
        self.timer = self.loop.assumeIsolated().scheduleTask(deadline: self.deadline) { self.finish(false) }
        self.attempt()
    }

    private func attempt() {
        guard !self.finished else { return }
        self.client.send(["PING"]).assumeIsolated().whenComplete { result in
            switch result {
            case .success:
                self.finish(true)
            case .failure:
                guard !self.finished else { return }
                self.loop.assumeIsolated().scheduleTask(in: .milliseconds(100)) { self.attempt() }
            }
        }
    }

    private func finish(_ answered: Bool) {
        guard !self.finished else { return }
        self.finished = true
        self.timer?.cancel()
        self.client.close()
        self.promise.succeed(answered)
    }
}
