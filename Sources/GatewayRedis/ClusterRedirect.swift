package import GatewayConfig

/// A cluster node's answer that the key lives elsewhere: `MOVED <slot> <host>:<port>` (the
/// slot has moved for good: update the map) or `ASK <slot> <host>:<port>` (the slot is being
/// migrated and this key is already on the target: ask there once, after `ASKING`).
///
/// Parsed strictly from an error reply a node sent, so a hostile or garbled reply is not a
/// redirect. A value; any thread.
package struct ClusterRedirect: Sendable, Hashable {
    package enum Kind: Sendable, Hashable {
        case moved
        case ask
    }

    package var kind: Kind
    package var slot: Int
    package var node: RedisSettings.Endpoint

    package init(kind: Kind, slot: Int, node: RedisSettings.Endpoint) {
        self.kind = kind
        self.slot = slot
        self.node = node
    }

    /// The redirect in an error reply's text, or nil when it is some other error.
    package init?(errorMessage message: String) {
        guard message.utf8.count <= 300 else { return nil }
        let parts = message.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        switch parts[0] {
        case "MOVED": self.kind = .moved
        case "ASK": self.kind = .ask
        default: return nil
        }
        guard parts[1].allSatisfy(\.isASCIIDigitCharacter), parts[1].count <= 5, let slot = Int(parts[1]),
            slot < ClusterSlot.count
        else { return nil }
        guard let node = Self.endpoint(parts[2]) else { return nil }
        self.slot = slot
        self.node = node
    }

    /// `host:port` or `[v6]:port` (the last colon splits); an empty host is refused (a node
    /// that does not know its own address says `:port`).
    static func endpoint(_ text: Substring) -> RedisSettings.Endpoint? {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = text[..<colon]
        let portText = text[text.index(after: colon)...]
        guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy(\.isASCIIDigitCharacter),
            let port = Int(portText), (1...65535).contains(port)
        else { return nil }
        if host.hasPrefix("["), host.hasSuffix("]") {
            host = host.dropFirst().dropLast()
        }
        guard !host.isEmpty, host.count <= 253,
            host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == ":") })
        else { return nil }
        return .tcp(host: String(host), port: port)
    }
}

extension Character {
    fileprivate var isASCIIDigitCharacter: Bool { self.isASCII && self.isNumber }
}
