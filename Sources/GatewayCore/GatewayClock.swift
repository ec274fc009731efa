package import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The gateway's one source of time, injected from the top: the server makes `.system` once
/// and hands it down; tests hand down a clock they move by hand. Two views:
/// `now()` is monotonic (cache ages, backoffs, token buckets, request durations) and
/// `unixSeconds()` is the wall clock (expiry of keys, tokens and sessions, `last_used_at`).
///
/// Timers armed on an event loop keep reading `eventLoop.now`, the loop's own clock, so a
/// deadline and the task that checks it always agree.
///
/// A value of two `@Sendable` closures; any thread.
package struct GatewayClock: Sendable {
    private let monotonic: @Sendable () -> NIODeadline
    private let wall: @Sendable () -> Int64

    /// - Parameters:
    ///   - monotonic: the monotonic reading (never goes back).
    ///   - unixSeconds: whole seconds since the Unix epoch.
    package init(monotonic: @escaping @Sendable () -> NIODeadline, unixSeconds: @escaping @Sendable () -> Int64) {
        self.monotonic = monotonic
        self.wall = unixSeconds
    }

    /// The process's clocks: `NIODeadline.now()` and `CLOCK_REALTIME`.
    package static let system = GatewayClock(
        monotonic: { NIODeadline.now() },
        unixSeconds: {
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            return Int64(now.tv_sec)
        }
    )

    /// The monotonic time.
    package func now() -> NIODeadline { self.monotonic() }

    /// Whole seconds since the Unix epoch.
    package func unixSeconds() -> Int64 { self.wall() }
}
