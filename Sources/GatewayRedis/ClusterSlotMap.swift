package import GatewayConfig

/// Which primary serves each of the 16384 slots, learnt from `CLUSTER SHARDS` (Redis 7+) or
/// `CLUSTER SLOTS`, and corrected slot by slot when a node answers `MOVED`.
///
/// The replies are parsed strictly: a slot number out of range, a node without a usable
/// address or port, or a reply of the wrong shape is refused as a whole rather than half
/// applied. One per cluster client, so touched only on that client's event loop.
package struct ClusterSlotMap: Sendable, Hashable {
    /// Every primary named, in the order first seen.
    package private(set) var nodes: [RedisSettings.Endpoint] = []
    /// Index into `nodes` per slot; `unassigned` when no node serves it.
    private var owners: [UInt16]
    private static let unassigned = UInt16.max

    package init() {
        self.owners = Array(repeating: Self.unassigned, count: ClusterSlot.count)
    }

    /// The primary serving `slot`, nil when the map has no owner for it.
    package func node(forSlot slot: Int) -> RedisSettings.Endpoint? {
        guard slot >= 0, slot < ClusterSlot.count else { return nil }
        let owner = self.owners[slot]
        return owner == Self.unassigned ? nil : self.nodes[Int(owner)]
    }

    /// How many slots have an owner (16384 when the cluster is fully covered).
    package var coveredSlots: Int { self.owners.lazy.filter { $0 != Self.unassigned }.count }

    /// `MOVED`: `slot` is served by `node` from now on.
    package mutating func assign(slot: Int, to node: RedisSettings.Endpoint) {
        guard slot >= 0, slot < ClusterSlot.count else { return }
        self.assign(slot...slot, to: node)
    }

    private mutating func assign(_ slots: ClosedRange<Int>, to node: RedisSettings.Endpoint) {
        let index: Int
        if let known = self.nodes.firstIndex(of: node) {
            index = known
        } else {
            index = self.nodes.count
            self.nodes.append(node)
        }
        for slot in slots { self.owners[slot] = UInt16(index) }
    }

    package enum ParseError: Error, Hashable, CustomStringConvertible {
        case malformed(String)

        package var description: String {
            switch self {
            case .malformed(let reason): return "unexpected cluster topology reply: \(reason)"
            }
        }
    }

    /// At most this many shards or ranges are read from one reply (a real cluster has far
    /// fewer; a bigger reply is not a cluster's).
    private static let maximumEntries = 16384

    /// The map in a `CLUSTER SHARDS` reply: per shard, its slot ranges and the node whose
    /// role is `master`. `useTLSPort`: read `tls-port` rather than `port`. A node that does
    /// not know its own address (one that never met another says `""`) is reached on the
    /// host of `answeredBy`, the node that sent the reply.
    package static func fromShards(
        _ reply: RESPValue,
        useTLSPort: Bool = false,
        answeredBy: RedisSettings.Endpoint? = nil
    ) throws -> ClusterSlotMap {
        guard case .array(let shards) = reply, shards.count <= Self.maximumEntries else {
            throw ParseError.malformed("CLUSTER SHARDS is not a list")
        }
        var map = ClusterSlotMap()
        for shard in shards {
            let fields = try Self.fields(shard)
            guard case .array(let slotBounds)? = fields["slots"], slotBounds.count % 2 == 0,
                case .array(let nodes)? = fields["nodes"]
            else { throw ParseError.malformed("a shard without slots or nodes") }
            var primary: RedisSettings.Endpoint?
            for node in nodes {
                let nodeFields = try Self.fields(node)
                guard nodeFields["role"].flatMap(Self.text) == "master" else { continue }
                if let health = nodeFields["health"].flatMap(Self.text), health != "online" { continue }
                let host =
                    nodeFields["endpoint"].flatMap(Self.text).flatMap { $0 == "?" || $0.isEmpty ? nil : $0 }
                    ?? nodeFields["ip"].flatMap(Self.text).flatMap { $0.isEmpty ? nil : $0 }
                    ?? Self.host(of: answeredBy)
                let port = nodeFields[useTLSPort ? "tls-port" : "port"].flatMap(Self.integer)
                guard let host, let port, let endpoint = ClusterRedirect.endpoint("\(host):\(port)"[...]) else {
                    throw ParseError.malformed("a primary without a usable address")
                }
                primary = endpoint
            }
            guard let primary else { continue }  // A shard whose primary is down serves nothing.
            var index = 0
            while index < slotBounds.count {
                let range = try Self.range(slotBounds[index], slotBounds[index + 1])
                map.assign(range, to: primary)
                index += 2
            }
        }
        return map
    }

    /// The map in a `CLUSTER SLOTS` reply: `[start, end, [host, port, id, ...], replicas...]`
    /// (an empty host: `answeredBy`'s, as for `fromShards`).
    package static func fromSlots(
        _ reply: RESPValue,
        answeredBy: RedisSettings.Endpoint? = nil
    ) throws
        -> ClusterSlotMap
    {
        guard case .array(let entries) = reply, entries.count <= Self.maximumEntries else {
            throw ParseError.malformed("CLUSTER SLOTS is not a list")
        }
        var map = ClusterSlotMap()
        for entry in entries {
            guard case .array(let parts) = entry, parts.count >= 3, case .array(let primary) = parts[2],
                primary.count >= 2, let announced = Self.text(primary[0]), let port = Self.integer(primary[1]),
                let host = announced.isEmpty ? Self.host(of: answeredBy) : announced,
                let endpoint = ClusterRedirect.endpoint("\(host):\(port)"[...])
            else { throw ParseError.malformed("a slot range without a usable primary") }
            map.assign(try Self.range(parts[0], parts[1]), to: endpoint)
        }
        return map
    }

    private static func host(of node: RedisSettings.Endpoint?) -> String? {
        guard case .tcp(let host, _) = node else { return nil }
        return host.contains(":") ? "[\(host)]" : host
    }

    private static func range(_ start: RESPValue, _ end: RESPValue) throws -> ClosedRange<Int> {
        guard let first = Self.integer(start), let last = Self.integer(end), first >= 0, first <= last,
            last < ClusterSlot.count
        else { throw ParseError.malformed("a slot range out of bounds") }
        return first...last
    }

    /// A flat `[name, value, name, value, ...]` list (RESP2's form of a map).
    private static func fields(_ value: RESPValue) throws -> [String: RESPValue] {
        guard case .array(let items) = value, items.count % 2 == 0, items.count <= 64 else {
            throw ParseError.malformed("a field list of the wrong shape")
        }
        var fields: [String: RESPValue] = [:]
        var index = 0
        while index < items.count {
            guard let name = Self.text(items[index]) else { throw ParseError.malformed("a field without a name") }
            fields[name] = items[index + 1]
            index += 2
        }
        return fields
    }

    private static func text(_ value: RESPValue) -> String? {
        switch value {
        case .bulkString(let bytes) where bytes.count <= 256: return String(decoding: bytes, as: UTF8.self)
        case .simpleString(let text) where text.utf8.count <= 256: return text
        default: return nil
        }
    }

    private static func integer(_ value: RESPValue) -> Int? {
        switch value {
        case .integer(let number): return Int(exactly: number)
        case .bulkString(let bytes) where bytes.count <= 20: return Int(String(decoding: bytes, as: UTF8.self))
        default: return nil
        }
    }
}
