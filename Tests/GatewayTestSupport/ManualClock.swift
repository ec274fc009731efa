package import GatewayCore
package import NIOCore
import Synchronization

/// The one clock tests move by hand. Its `clock` is the `GatewayClock` the code under test
/// is given: both views (unix seconds for expiry, sessions and `last_used_at`; the monotonic
/// deadline for cache ages, backoffs and token buckets) advance together.
///
/// The value is atomic, so limiter shards on other event loops may read it while the test
/// thread moves it.
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

    package func advance(by amount: TimeAmount) {
        self.storedNanoseconds.add(UInt64(amount.nanoseconds), ordering: .sequentiallyConsistent)
    }

    /// What the code under test reads.
    package var clock: GatewayClock {
        GatewayClock(
            monotonic: { NIODeadline.uptimeNanoseconds(self.nanoseconds) },
            unixSeconds: { self.now }
        )
    }
}
