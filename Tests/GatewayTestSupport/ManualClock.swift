import Synchronization

/// The one clock tests move by hand. It reads as unix seconds (credential expiry, sessions,
/// `last_used_at`) and as nanoseconds (token buckets); both views advance together.
///
/// Product code takes its time from an injected closure; tests hand it `unixSeconds` or
/// `nanosecondsReader`. The value is atomic, so limiter shards on other event loops may read
/// it while the test thread moves it.
package final class ManualClock: Sendable {
    private let storedNanoseconds: Atomic<UInt64>

    /// A clock reading `unixSeconds` (default: a fixed instant in November 2023).
    package init(_ unixSeconds: Int64 = 1_700_000_000) {
        self.storedNanoseconds = Atomic(UInt64(unixSeconds) * 1_000_000_000)
    }

    /// Whole unix seconds; setting it moves the nanosecond view too.
    package var now: Int64 {
        get { Int64(self.nanoseconds / 1_000_000_000) }
        set { self.nanoseconds = UInt64(newValue) * 1_000_000_000 }
    }

    package var nanoseconds: UInt64 {
        get { self.storedNanoseconds.load(ordering: .sequentiallyConsistent) }
        set { self.storedNanoseconds.store(newValue, ordering: .sequentiallyConsistent) }
    }

    package func advance(seconds: UInt64) {
        self.storedNanoseconds.add(seconds * 1_000_000_000, ordering: .sequentiallyConsistent)
    }

    /// For code that takes `() -> Int64` unix seconds.
    package var unixSeconds: @Sendable () -> Int64 { { self.now } }

    /// For code that takes `() -> UInt64` nanoseconds (the rate limiter's monotonic clock).
    package var nanosecondsReader: @Sendable () -> UInt64 { { self.nanoseconds } }
}
