package import GatewayCore
import NIOConcurrencyHelpers

/// The process-local browser sessions and authorization flows shared by every loop's
/// `InMemoryBrowserStateStore`, behind a lock, with the same lifetimes as on Redis (each
/// entry expires `ttl` seconds after it was written). Only the demo runs the pages without
/// Redis; the lock is taken by the pages, never on the proxy path. Any thread.
package final class InMemoryBrowserStateData: Sendable {
    private struct Entry<Value: Sendable>: Sendable {
        var value: Value
        var expiresAt: Int64
    }

    private struct Storage: Sendable {
        var sessions: [String: Entry<BrowserSessionRecord>] = [:]
        var flows: [String: Entry<String>] = [:]
    }

    /// Bounds each map: expired entries are dropped when it grows past this.
    private static let pruneThreshold = 10_000

    private let storage = NIOLockedValueBox(Storage())
    private let clock: GatewayClock

    package init(clock: GatewayClock) {
        self.clock = clock
    }

    func createSession(hash: String, record: BrowserSessionRecord, ttl: Int64) {
        let now = self.clock.unixSeconds()
        self.storage.withLockedValue { storage in
            if storage.sessions.count > Self.pruneThreshold {
                storage.sessions = storage.sessions.filter { $0.value.expiresAt > now }
            }
            storage.sessions[hash] = Entry(value: record, expiresAt: now + max(1, ttl))
        }
    }

    func session(hash: String) -> BrowserSessionRecord? {
        let now = self.clock.unixSeconds()
        return self.storage.withLockedValue { storage in
            guard let entry = storage.sessions[hash], entry.expiresAt > now else { return nil }
            return entry.value
        }
    }

    /// Like SET XX: never brings back a session that was deleted or has expired.
    func touchSession(hash: String, record: BrowserSessionRecord, ttl: Int64) {
        let now = self.clock.unixSeconds()
        self.storage.withLockedValue { storage in
            guard let entry = storage.sessions[hash], entry.expiresAt > now else { return }
            storage.sessions[hash] = Entry(value: record, expiresAt: now + max(1, ttl))
        }
    }

    func deleteSession(hash: String) {
        self.storage.withLockedValue { _ = $0.sessions.removeValue(forKey: hash) }
    }

    func deleteSessions(userID: String) -> Int {
        let now = self.clock.unixSeconds()
        return self.storage.withLockedValue { storage in
            let doomed = storage.sessions.filter { $0.value.value.userID == userID }
            for hash in doomed.keys { storage.sessions[hash] = nil }
            return doomed.values.filter { $0.expiresAt > now }.count
        }
    }

    func storeFlow(id: String, json: String, ttl: Int64) {
        let now = self.clock.unixSeconds()
        self.storage.withLockedValue { storage in
            if storage.flows.count > Self.pruneThreshold {
                storage.flows = storage.flows.filter { $0.value.expiresAt > now }
            }
            storage.flows[id] = Entry(value: json, expiresAt: now + max(1, ttl))
        }
    }

    func flow(id: String) -> String? {
        let now = self.clock.unixSeconds()
        return self.storage.withLockedValue { storage in
            guard let entry = storage.flows[id], entry.expiresAt > now else { return nil }
            return entry.value
        }
    }

    /// True for exactly one of concurrent callers, and only while the flow lives.
    func deleteFlow(id: String) -> Bool {
        let now = self.clock.unixSeconds()
        return self.storage.withLockedValue { storage in
            guard let entry = storage.flows.removeValue(forKey: id) else { return false }
            return entry.expiresAt > now
        }
    }
}
