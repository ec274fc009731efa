import GatewayAuth
import GatewayCore
import NIOCore

// A fixed-window LoginThrottle for SessionEndpoints tests (production uses
// RateLimitedLoginThrottle over the shared token buckets, tested in GatewayProxyTests).

/// A per-event-loop fixed-window counter: `limit` attempts per `window` for each address
/// and each account. Used when no shared (Redis) limiter is configured. Bounded memory:
/// windows that ended are swept when the table is full. Touched only on its event loop.
final class LocalLoginThrottle: LoginThrottle {
    private struct Window {
        var start: NIODeadline
        var count: Int
    }

    private let eventLoop: any EventLoop
    private let perAddress: Int
    private let perAccount: Int
    private let window: TimeAmount
    private var windows: [String: Window] = [:]
    private let maximumEntries: Int
    private let clock: GatewayClock

    init(
        eventLoop: any EventLoop,
        perAddress: Int,
        perAccount: Int,
        window: TimeAmount,
        maximumEntries: Int = 100_000,
        clock: GatewayClock
    ) {
        self.eventLoop = eventLoop
        self.clock = clock
        self.perAddress = perAddress
        self.perAccount = perAccount
        self.window = window
        self.maximumEntries = maximumEntries
    }

    func admit(
        address: String?,
        account: String?,
        purpose: LoginThrottlePurpose
    ) -> EventLoopFuture<LoginThrottleDecision> {
        // Each purpose counts apart, as in the production throttle.
        let address = address.map { purpose == .login ? $0 : purpose.rawValue + " " + $0 }
        return eventLoop.makeSucceededFuture(decide(address: address, account: account, now: self.clock.now()))
    }

    func decide(address: String?, account: String?, now: NIODeadline) -> LoginThrottleDecision {
        if windows.count >= maximumEntries {
            windows = windows.filter { now - $0.value.start < window }
        }
        var buckets: [(String, Int)] = []
        if let address { buckets.append(("a:" + address, perAddress)) }
        if let account { buckets.append(("u:" + account, perAccount)) }
        var wait: TimeAmount = .zero
        for (key, limit) in buckets {
            var entry = windows[key] ?? Window(start: now, count: 0)
            if now - entry.start >= window { entry = Window(start: now, count: 0) }
            entry.count += 1
            windows[key] = entry
            if entry.count > limit { wait = max(wait, entry.start + window - now) }
        }
        guard wait > .zero else { return .allowed }
        let seconds = (wait.nanoseconds + 999_999_999) / 1_000_000_000
        return .limited(retryAfterSeconds: Int(max(1, seconds)))
    }
}
