// The one factor that widens every wall-clock bound of the Swift tests.

import Foundation

/// `GATEWAY_TEST_TIME_SCALE` (default 1, between 1 and 100), read once per test process so a
/// slow or loaded machine can be given room without editing tests. It only ever widens a
/// bound: lower bounds (nothing may happen before a timeout) are never scaled. Immutable, so
/// any thread may read it.
package enum TestTimeScale {
    package static let factor: Double = {
        guard let raw = ProcessInfo.processInfo.environment["GATEWAY_TEST_TIME_SCALE"] else { return 1 }
        guard let value = Double(raw), value >= 1, value <= 100 else {
            fatalError("GATEWAY_TEST_TIME_SCALE=\(raw) must be a number between 1 and 100")
        }
        return value
    }()

    /// A wall-clock bound widened by the factor.
    package static func scaled(_ duration: Duration) -> Duration {
        duration * factor
    }
}
