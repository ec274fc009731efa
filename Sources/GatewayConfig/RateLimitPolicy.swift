/// One `[[rate_limits]]` entry: a named token bucket shape. Routes and
/// credentials refer to it by name; the bucket key (principal or client address) is chosen
/// by the caller.
///
/// Immutable value, part of the configuration snapshot; any thread.
package struct RateLimitPolicy: Sendable, Hashable {
    /// The span `rate` is counted over.
    package enum Period: String, Sendable, Hashable, CaseIterable {
        case second, minute, hour

        package var seconds: Int64 {
            switch self {
            case .second: return 1
            case .minute: return 60
            case .hour: return 3600
            }
        }
    }

    /// What a decision does when the shared store (Redis) cannot answer in time.
    package enum StoreUnavailablePolicy: String, Sendable, Hashable, CaseIterable {
        /// Decide with this process's buckets (limits then hold per instance, not globally).
        case local
        /// Refuse with 503: an outage must not lift the limit.
        case deny
    }

    /// Largest `rate` and `burst`: keeps the bucket's integer arithmetic (nanosecond
    /// resolution over an hour) far from overflow.
    package static let maximumTokens = 1_000_000

    /// `[A-Za-z0-9_.-]{1,64}`: safe in a Redis key and as a header's quoted string.
    package var name: String
    /// Tokens added per `per`.
    package var rate: Int
    package var per: Period
    /// Bucket size: the most requests admitted at once after a quiet period.
    package var burst: Int
    package var onStoreUnavailable: StoreUnavailablePolicy

    package init(
        name: String,
        rate: Int,
        per: Period,
        burst: Int? = nil,
        onStoreUnavailable: StoreUnavailablePolicy = .local
    ) {
        self.name = name
        self.rate = rate
        self.per = per
        self.burst = burst ?? rate
        self.onStoreUnavailable = onStoreUnavailable
    }

    /// `attempts` per `windowSeconds`: a bucket of `attempts` refilling that many per
    /// window. Policies count per second, minute or hour, so any other window is expressed
    /// per hour (the configuration refuses windows whose rate that would overflow).
    package static func attempts(_ name: String, _ attempts: Int, windowSeconds: Int) -> RateLimitPolicy {
        switch max(1, windowSeconds) {
        case 1: RateLimitPolicy(name: name, rate: attempts, per: .second, burst: attempts)
        case 60: RateLimitPolicy(name: name, rate: attempts, per: .minute, burst: attempts)
        case 3600: RateLimitPolicy(name: name, rate: attempts, per: .hour, burst: attempts)
        case let window:
            RateLimitPolicy(
                name: name,
                rate: max(1, (attempts * 3600 + window - 1) / window),
                per: .hour,
                burst: attempts
            )
        }
    }

    /// Whether `name` is a valid policy name.
    package static func isValidName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count)
            && name.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"):
                    return true
                default:
                    return false
                }
            }
    }
}
