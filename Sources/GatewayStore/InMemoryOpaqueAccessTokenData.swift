package import GatewayCore
import NIOConcurrencyHelpers

/// Opaque access token records of this process, behind a lock, for the demo (no Redis):
/// the token endpoint, revocation and introspection use them, never the proxy path (which
/// reads opaque tokens only with `[redis]`). Any thread.
package final class InMemoryOpaqueAccessTokenData: Sendable {
    private let records = NIOLockedValueBox([String: OpaqueAccessTokenRecord]())
    private let clock: GatewayClock
    /// Bounds the map: expired records are dropped when it grows past this.
    private static let pruneThreshold = 10_000

    package init(clock: GatewayClock) {
        self.clock = clock
    }

    func store(hash: String, record: OpaqueAccessTokenRecord, now: Int64) -> Bool {
        self.records.withLockedValue { records in
            if records.count > Self.pruneThreshold { records = records.filter { $0.value.expiresAt > now } }
            guard records[hash] == nil else { return false }
            records[hash] = record
            return true
        }
    }

    func record(hash: String) -> OpaqueAccessTokenRecord? {
        let now = self.clock.unixSeconds()
        return self.records.withLockedValue { records in
            guard let record = records[hash], record.expiresAt > now else { return nil }
            return record
        }
    }

    func revoke(hash: String) -> Bool {
        self.records.withLockedValue { $0.removeValue(forKey: hash) != nil }
    }
}
