package import GatewayConfig

/// Parses what Sentinel and a data node say about roles: the reply of
/// `SENTINEL get-master-addr-by-name`, of `ROLE`, and the `+switch-master` message. Every
/// reply is hostile until parsed: bounded, strict, anything odd is `nil`. Pure; any thread.
package enum SentinelReply {
    /// What a sentinel said about the primary.
    package enum PrimaryAnswer: Sendable, Hashable {
        case primary(RedisSettings.Endpoint)
        /// The sentinel does not monitor a master of that name (a null reply).
        case unknownMaster
        case malformed
    }

    /// The role a node reports in the first element of its `ROLE` reply.
    package enum Role: String, Sendable, Hashable {
        case primary = "master"
        case replica = "slave"
        case sentinel
    }

    /// `SENTINEL get-master-addr-by-name <name>`: `["host", "port"]`, or null.
    package static func primaryAddress(_ reply: RESPValue) -> PrimaryAnswer {
        switch reply {
        case .null:
            return .unknownMaster
        case .array(let parts) where parts.isEmpty:
            return .unknownMaster
        case .array(let parts) where parts.count == 2:
            guard case .bulkString(let host) = parts[0], case .bulkString(let port) = parts[1],
                let endpoint = self.endpoint(host: String(decoding: host, as: UTF8.self), port: port)
            else { return .malformed }
            return .primary(endpoint)
        default:
            return .malformed
        }
    }

    /// `ROLE`: `["master", offset, [...]]`, `["slave", host, port, state, offset]`, `["sentinel", [...]]`.
    package static func role(_ reply: RESPValue) -> Role? {
        guard case .array(let parts) = reply, let first = parts.first else { return nil }
        switch first {
        case .bulkString(let bytes) where bytes.count <= 16:
            return Role(rawValue: String(decoding: bytes, as: UTF8.self))
        case .simpleString(let text):
            return Role(rawValue: text)
        default:
            return nil
        }
    }

    /// The new primary of `masterName` from a pub/sub message on `+switch-master`
    /// (`<name> <old-ip> <old-port> <new-ip> <new-port>`), or nil for anything else.
    package static func switchMaster(_ message: RESPValue, masterName: String) -> RedisSettings.Endpoint? {
        guard case .array(let parts) = message, parts.count == 3,
            case .bulkString(let kind) = parts[0], kind == Array("message".utf8),
            case .bulkString(let channel) = parts[1], channel == Array("+switch-master".utf8),
            case .bulkString(let payload) = parts[2], payload.count <= 1024
        else { return nil }
        let fields = String(decoding: payload, as: UTF8.self).split(separator: " ", omittingEmptySubsequences: false)
        guard fields.count == 5, fields[0] == masterName else { return nil }
        return self.endpoint(host: String(fields[3]), port: Array(fields[4].utf8))
    }

    /// An error reply meaning "this node is not (or no longer) a usable primary": the
    /// client must ask the sentinels again. `READONLY`: a demoted primary, now a replica;
    /// `MASTERDOWN`: a replica that lost its primary.
    package static func isFailoverError(_ message: String) -> Bool {
        message.hasPrefix("READONLY") || message.hasPrefix("MASTERDOWN")
    }

    /// `host` (an IPv4/IPv6 literal or a host name) and a decimal port 1-65535.
    private static func endpoint(host: String, port: [UInt8]) -> RedisSettings.Endpoint? {
        guard !host.isEmpty, host.utf8.count <= 253,
            host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == ":") }),
            (1...5).contains(port.count), port.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let number = Int(String(decoding: port, as: UTF8.self)), (1...65535).contains(number)
        else { return nil }
        return .tcp(host: host, port: number)
    }
}
