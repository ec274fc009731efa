/// Which keys a command touches, so a cluster client can send it to the node serving their
/// slot: the first argument for single-key commands, every argument for `MGET`/`DEL`/...,
/// the declared keys of `EVAL`/`EVALSHA`, none for commands any node answers (`PING`,
/// `PUBLISH`, `SCRIPT`, ...). `SPUBLISH` goes by its channel, which sharded pub/sub hashes
/// like a key.
///
/// A command whose keys hash to different slots is refused here, before it is sent: Redis
/// would refuse it too (`CROSSSLOT`), and catching it on the client names the command. Pure;
/// any thread.
package enum ClusterCommandKeys {
    package enum Route: Sendable, Hashable {
        /// No key: any node will do.
        case anyNode
        case slot(Int)
        /// Keys in different slots: never sent.
        case crossSlot
    }

    private static let keyless: Set<String> = [
        "PING", "INFO", "SCRIPT", "CLUSTER", "PUBLISH", "SUBSCRIBE", "UNSUBSCRIBE", "PSUBSCRIBE", "ROLE", "AUTH",
        "SELECT", "HELLO", "TIME", "DBSIZE", "KEYS", "SCAN", "CONFIG", "ACL", "CLIENT", "COMMAND", "ECHO", "ASKING",
        "READONLY", "FLUSHALL", "FLUSHDB", "MULTI", "EXEC", "DISCARD", "WAIT",
    ]
    private static let allKeys: Set<String> = ["MGET", "DEL", "UNLINK", "EXISTS", "TOUCH", "WATCH", "SINTER", "SUNION"]
    private static let scripts: Set<String> = ["EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"]

    /// Where `arguments` (the command name first) must go.
    package static func route(of arguments: [[UInt8]]) -> Route {
        guard let first = arguments.first, first.count <= 16 else { return .anyNode }
        let name = String(decoding: first, as: UTF8.self).uppercased()
        if name == "SCAN" { return Self.route(ofScan: arguments) }
        if Self.keyless.contains(name) { return .anyNode }
        if Self.scripts.contains(name) {
            guard arguments.count >= 3, arguments[2].count <= 6,
                let count = Int(String(decoding: arguments[2], as: UTF8.self)), count >= 0,
                arguments.count >= 3 + count
            else { return .anyNode }
            return Self.route(ofKeys: arguments[3..<(3 + count)])
        }
        if Self.allKeys.contains(name) { return Self.route(ofKeys: arguments.dropFirst()) }
        if name == "MSET" || name == "MSETNX" {
            return Self.route(ofKeys: stride(from: 1, to: arguments.count, by: 2).lazy.map { arguments[$0] })
        }
        guard arguments.count >= 2 else { return .anyNode }
        return .slot(ClusterSlot.of(arguments[1]))
    }

    /// A `SCAN` whose `MATCH` pattern carries a hash tag (`dbgw:{gw}:user:*`) can only find
    /// keys in the tag's slot, so it goes to that slot's node; any other `SCAN` sees one node.
    private static func route(ofScan arguments: [[UInt8]]) -> Route {
        guard let match = arguments.firstIndex(where: { String(decoding: $0, as: UTF8.self).uppercased() == "MATCH" }),
            match + 1 < arguments.count
        else { return .anyNode }
        let pattern = arguments[match + 1]
        let tag = ClusterSlot.hashedPart(of: pattern)
        guard tag.count < pattern.count,
            !tag.contains(where: {
                [UInt8(ascii: "*"), UInt8(ascii: "?"), UInt8(ascii: "["), UInt8(ascii: "\\")].contains($0)
            })
        else { return .anyNode }
        return .slot(ClusterSlot.of(pattern))
    }

    package static func route<Keys: Collection<[UInt8]>>(ofKeys keys: Keys) -> Route {
        guard let first = keys.first else { return .anyNode }
        let slot = ClusterSlot.of(first)
        for key in keys.dropFirst() where ClusterSlot.of(key) != slot { return .crossSlot }
        return .slot(slot)
    }
}
