package import GatewayConfig

/// The life of one subscription to one channel, from opening a connection to hearing
/// messages, in every topology.
///
/// One Redis or Sentinel: open the node the usual way and `SUBSCRIBE`. A cluster: open a
/// seed node, read the slot map there, open the primary serving the channel's slot and
/// `SSUBSCRIBE` (sharded pub/sub, Redis 7: the messages stay on that shard instead of being
/// broadcast to every node). `MOVED` sends it to the node named (at most
/// `maximumRedirects` hops); `ERR unknown command` (Redis before 7) falls back to
/// `SUBSCRIBE` on the same node, tried again at every subscription so an upgraded cluster
/// is used as such. Once subscribed, an `sunsubscribe` for the channel (its slot left the
/// node) means subscribing again at once, wherever the slot went.
///
/// The owner executes the actions (it holds the connection) and feeds back what happened.
/// A value owned by one subscription on its event loop.
package struct RedisSubscriptionStateMachine: Sendable, Hashable {
    package static let maximumRedirects = 5

    package enum Action: Sendable, Hashable {
        /// Open a connection the usual way: the configured server, the primary the
        /// sentinels name, or (cluster) the next seed node.
        case openDefault
        /// Close the connection in hand, if any, and open one to this cluster node.
        case openNode(RedisSettings.Endpoint)
        /// Read the slot map on the connection in hand, to this node (`CLUSTER SHARDS`, else
        /// `CLUSTER SLOTS`).
        case readMap(RedisSettings.Endpoint)
        /// Send this command on the connection in hand and report its reply.
        case send([String])
        /// `node` does not know `SSUBSCRIBE`: say so (once per process) and send this
        /// `SUBSCRIBE` on the connection in hand.
        case fallBack(node: RedisSettings.Endpoint, send: [String])
        /// Subscribed on `node`; whatever was published before may have been missed.
        case subscribed(node: RedisSettings.Endpoint, sharded: Bool)
        /// A message on the channel.
        case deliver([UInt8])
        /// Close the connection and subscribe again at once (the channel's slot moved).
        case resubscribe(reason: String)
        /// Close the connection and try again after the back-off.
        case fail(reason: String)
        /// Nothing to do; a reason is worth a log line (a malformed message).
        case ignore(reason: String?)
    }

    private enum State: Sendable, Hashable {
        case idle
        case openingDefault
        case openingNode(RedisSettings.Endpoint, hops: Int)
        case readingMap(RedisSettings.Endpoint)
        case subscribing(RedisSettings.Endpoint, sharded: Bool, hops: Int)
        case subscribed(RedisSettings.Endpoint, sharded: Bool)
    }

    package let channel: [UInt8]
    package let slot: Int
    private let cluster: Bool
    private var state = State.idle

    /// - Parameter cluster: sharded pub/sub on the owner of the channel's slot; otherwise
    ///   plain pub/sub on the node the opener finds.
    package init(channel: String, cluster: Bool) {
        self.channel = Array(channel.utf8)
        self.slot = ClusterSlot.of(self.channel)
        self.cluster = cluster
    }

    /// Nothing in progress: neither subscribed nor on the way.
    package var isIdle: Bool { self.state == .idle }

    package var isSubscribed: Bool {
        if case .subscribed = self.state { return true }
        return false
    }

    /// Starts an attempt (only when idle).
    package mutating func begin() -> Action {
        guard self.state == .idle else { return .ignore(reason: nil) }
        self.state = .openingDefault
        return .openDefault
    }

    /// The connection asked for is open and ready for commands.
    package mutating func opened(_ endpoint: RedisSettings.Endpoint) -> Action {
        switch self.state {
        case .openingDefault where self.cluster:
            self.state = .readingMap(endpoint)
            return .readMap(endpoint)
        case .openingDefault:
            self.state = .subscribing(endpoint, sharded: false, hops: 0)
            return .send(self.command(sharded: false))
        case .openingNode(let node, let hops):
            self.state = .subscribing(node, sharded: true, hops: hops)
            return .send(self.command(sharded: true))
        default:
            return self.failed("internal: a connection opened when none was asked for")
        }
    }

    /// The slot map read on the seed node.
    package mutating func mapRead(_ map: ClusterSlotMap) -> Action {
        guard case .readingMap(let seed) = self.state else {
            return self.failed("internal: a slot map read when none was asked for")
        }
        guard let owner = map.node(forSlot: self.slot) else {
            return self.failed("\(seed): no primary serves slot \(self.slot) of the revocation channel")
        }
        if owner == seed {
            self.state = .subscribing(seed, sharded: true, hops: 0)
            return .send(self.command(sharded: true))
        }
        self.state = .openingNode(owner, hops: 0)
        return .openNode(owner)
    }

    /// The subscription command's reply.
    package mutating func replied(_ reply: RESPValue) -> Action {
        guard case .subscribing(let node, let sharded, let hops) = self.state else {
            return self.failed("internal: a reply when no command was sent")
        }
        if case .error(let message) = reply {
            if sharded, Self.isUnknownCommand(message) {
                self.state = .subscribing(node, sharded: false, hops: hops)
                return .fallBack(node: node, send: self.command(sharded: false))
            }
            if sharded, let redirect = ClusterRedirect(errorMessage: message), redirect.kind == .moved {
                guard hops < Self.maximumRedirects else {
                    return self.failed("\(node): more than \(Self.maximumRedirects) redirections: \(message)")
                }
                self.state = .openingNode(redirect.node, hops: hops + 1)
                return .openNode(redirect.node)
            }
            return self.failed("\(node): \(message.prefix(200))")
        }
        guard case .subscribed(self.channel, _, sharded)? = PubSubReply.parse(reply) else {
            return self.failed("\(node): unexpected reply to \(sharded ? "SSUBSCRIBE" : "SUBSCRIBE")")
        }
        self.state = .subscribed(node, sharded: sharded)
        return .subscribed(node: node, sharded: sharded)
    }

    /// A reply no command waited for: a message, or Redis ending the subscription.
    package mutating func pushed(_ value: RESPValue) -> Action {
        guard case .subscribed(let node, let sharded) = self.state else {
            return .ignore(reason: "a pub/sub message before the subscription was confirmed")
        }
        switch PubSubReply.parse(value) {
        case .message(self.channel, let payload, sharded)?:
            return .deliver(payload)
        case .unsubscribed(self.channel, _, _)?:
            self.state = .idle
            return .resubscribe(reason: "\(node) ended the subscription (the channel's slot moved)")
        default:
            return .ignore(reason: "malformed pub/sub message")
        }
    }

    /// Opening, reading the map or sending failed (`reason` for the log).
    package mutating func failed(_ reason: String) -> Action {
        self.state = .idle
        return .fail(reason: reason)
    }

    /// The subscribed connection closed.
    package mutating func connectionLost() {
        self.state = .idle
    }

    private func command(sharded: Bool) -> [String] {
        [sharded ? "SSUBSCRIBE" : "SUBSCRIBE", String(decoding: self.channel, as: UTF8.self)]
    }

    /// Redis's answer to a command it does not have (`SSUBSCRIBE`/`SPUBLISH` before Redis 7,
    /// or renamed away); inside a script: `Unknown Redis command called from script`.
    package static func isUnknownCommand(_ message: String) -> Bool {
        message.hasPrefix("ERR unknown command") || message.hasPrefix("ERR Unknown Redis command")
    }
}
