package import GatewayConfig

/// Which node one Redis connection should use in Sentinel mode, as a state machine: it
/// says whom to ask or connect to next, the owner (`RedisNodeOpener`) does the I/O and feeds
/// the answers back.
///
/// discovering (ask the sentinels in turn, starting with the one that last answered) →
/// connecting (`ROLE` must say master) → connected; a `+switch-master` announcement moves a
/// connected machine to switching (connect straight to the announced primary); a lost
/// connection, a `READONLY`/`MASTERDOWN` reply or a node that is not the primary sends it
/// back to discovering. A value owned by one event loop's opener.
package struct SentinelStateMachine: Sendable {
    package enum State: Sendable, Hashable {
        case idle
        case discovering(sentinel: Int, asked: Int)
        case connecting(RedisSettings.Endpoint)
        case connected(RedisSettings.Endpoint)
        case switching(from: RedisSettings.Endpoint?, to: RedisSettings.Endpoint)
    }

    package enum Action: Sendable, Hashable {
        /// Ask the sentinel at this index of `[redis] sentinels` for the primary.
        case askSentinel(Int)
        /// Open a connection to this node and check its `ROLE`.
        case connect(RedisSettings.Endpoint)
        /// The connection is on the primary.
        case ready(RedisSettings.Endpoint)
        /// This attempt failed (the caller backs off); the text is for the log, `refused` says
        /// a sentinel answered but named no usable primary (worth logging, unlike an outage).
        case fail(String, refused: Bool)
    }

    package let sentinelCount: Int
    package let masterName: String
    package private(set) var state: State = .idle
    /// The sentinel that answered last: asked first next time.
    private var preferred = 0

    package init(sentinelCount: Int, masterName: String) {
        self.sentinelCount = max(1, sentinelCount)
        self.masterName = masterName
    }

    /// The primary this machine is connected to, if any.
    package var primary: RedisSettings.Endpoint? {
        if case .connected(let endpoint) = self.state { return endpoint }
        return nil
    }

    /// A new connection attempt.
    package mutating func beginAttempt() -> Action {
        if case .switching(_, let target) = self.state {
            self.state = .connecting(target)
            return .connect(target)
        }
        self.state = .discovering(sentinel: self.preferred, asked: 0)
        return .askSentinel(self.preferred)
    }

    /// A sentinel's answer, or nil when it could not be reached or asked.
    package mutating func sentinelAnswered(
        _ index: Int,
        _ answer: SentinelReply.PrimaryAnswer?,
        reason: String = "unreachable"
    ) -> Action {
        if case .switching(_, let target) = self.state {
            // Announced while this attempt asked: go where the announcement says.
            self.state = .connecting(target)
            return .connect(target)
        }
        guard case .discovering(let current, let asked) = self.state, current == index else {
            self.state = .idle
            return .fail("stale sentinel answer", refused: false)
        }
        if case .primary(let endpoint) = answer {
            self.preferred = index
            self.state = .connecting(endpoint)
            return .connect(endpoint)
        }
        let why: String
        switch answer {
        case .unknownMaster: why = "does not monitor a master named \(self.masterName)"
        case .malformed: why = "sent an unreadable answer"
        default: why = reason
        }
        if asked + 1 >= self.sentinelCount {
            self.state = .idle
            let refused = answer != nil
            return .fail("no sentinel named the primary of \(self.masterName) (the last one \(why))", refused: refused)
        }
        let next = (index + 1) % self.sentinelCount
        self.state = .discovering(sentinel: next, asked: asked + 1)
        return .askSentinel(next)
    }

    /// The node answered `ROLE` (after connecting and authenticating).
    package mutating func nodeAnswered(_ endpoint: RedisSettings.Endpoint, role: SentinelReply.Role?) -> Action {
        if case .switching(_, let target) = self.state {
            self.state = .connecting(target)
            return .connect(target)
        }
        guard case .connecting(let target) = self.state, target == endpoint else {
            self.state = .idle
            return .fail("stale node answer", refused: false)
        }
        guard role == .primary else {
            self.state = .idle
            let said = role.map { "a \($0 == .replica ? "replica" : $0.rawValue)" } ?? "of an unknown role"
            return .fail(
                "\(endpoint) is \(said), not the primary of \(self.masterName); asking the sentinels again",
                refused: false
            )
        }
        self.state = .connected(endpoint)
        return .ready(endpoint)
    }

    /// The node could not be reached or refused the handshake.
    package mutating func nodeFailed(_ endpoint: RedisSettings.Endpoint, reason: String) -> Action {
        if case .switching(_, let target) = self.state, target != endpoint {
            self.state = .connecting(target)
            return .connect(target)
        }
        self.state = .idle
        return .fail("\(endpoint): \(reason)", refused: false)
    }

    /// Sentinel announced a new primary. Returns whether the connection in use (if any)
    /// must be dropped: it is not on the announced node.
    package mutating func switchAnnounced(to primary: RedisSettings.Endpoint) -> Bool {
        switch self.state {
        case .connected(let current) where current == primary:
            return false
        case .connected(let current):
            self.state = .switching(from: current, to: primary)
            return true
        case .discovering, .connecting:
            // An attempt is under way; the next one goes straight to the announced node.
            self.state = .switching(from: nil, to: primary)
            return false
        case .idle, .switching:
            self.state = .switching(from: nil, to: primary)
            return false
        }
    }

    /// The connection closed, or the node answered `READONLY`/`MASTERDOWN`: the next attempt
    /// asks the sentinels.
    package mutating func connectionLost() {
        if case .switching = self.state { return }
        self.state = .idle
    }
}
