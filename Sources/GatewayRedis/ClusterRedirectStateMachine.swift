package import GatewayConfig

/// The life of one command on a cluster, across redirects: after `MOVED` the map is
/// corrected and the command goes to the new owner; after `ASK` it goes once to the node
/// named, preceded by `ASKING`; after `TRYAGAIN` (a multi-key command while its slot is
/// half migrated) it is sent again after a short pause. At most `maximumRedirects` hops, so
/// two nodes that disagree cannot bounce a command for ever.
///
/// A value per command, owned by the cluster client on its event loop.
package struct ClusterRedirectStateMachine: Sendable, Hashable {
    package static let maximumRedirects = 5

    package enum Action: Sendable, Hashable {
        /// Correct the map (`slot` now lives on `node`) and send the command there.
        case moved(slot: Int, node: RedisSettings.Endpoint)
        /// Send `ASKING` and the command to `node`, without touching the map.
        case ask(node: RedisSettings.Endpoint)
        /// Send it again after a pause.
        case tryAgain
        /// Too many hops: fail the command with the last error.
        case giveUp
        /// Not a redirect: the error is the command's answer.
        case deliver
    }

    package private(set) var redirects = 0

    package init() {}

    /// The node could not be reached and the command was never sent (`.unavailable`): true
    /// when it may go, once the map has been read again, to the slot's new owner (a replica
    /// promoted meanwhile). A command that may have reached the node is never sent twice.
    package mutating func nodeUnreachable() -> Bool {
        guard self.redirects < Self.maximumRedirects else { return false }
        self.redirects += 1
        return true
    }

    /// The node answered an error; what to do with the command.
    package mutating func failed(withMessage message: String) -> Action {
        let isTryAgain = message.hasPrefix("TRYAGAIN")
        let redirect = ClusterRedirect(errorMessage: message)
        guard isTryAgain || redirect != nil else { return .deliver }
        guard self.redirects < Self.maximumRedirects else { return .giveUp }
        self.redirects += 1
        guard let redirect else { return .tryAgain }
        switch redirect.kind {
        case .moved: return .moved(slot: redirect.slot, node: redirect.node)
        case .ask: return .ask(node: redirect.node)
        }
    }
}
