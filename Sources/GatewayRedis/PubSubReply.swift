/// One pub/sub reply from Redis, plain (`SUBSCRIBE`) or sharded (`SSUBSCRIBE`, Redis 7), read
/// strictly: a three-element array of the kind, the channel and the payload (a message) or the
/// subscription count (a confirmation, or an `sunsubscribe` Redis sends by itself when the
/// channel's slot leaves the node).
///
/// The gateway speaks RESP2 only (it never sends `HELLO 3`, and `RESPReader` refuses RESP3
/// push frames), so these arrays are the only shape accepted. Anything else (a pattern
/// message, a missing or oversized channel or payload, a count that is not an integer)
/// parses to nil. Pure; any thread.
package enum PubSubReply: Sendable, Hashable {
    case message(channel: [UInt8], payload: [UInt8], sharded: Bool)
    case subscribed(channel: [UInt8], count: Int64, sharded: Bool)
    case unsubscribed(channel: [UInt8], count: Int64, sharded: Bool)

    /// Largest channel name accepted (the gateway's is its key prefix plus `events`).
    package static let maximumChannelBytes = 1024
    /// Largest message accepted (revocation messages are under 300 bytes).
    package static let maximumPayloadBytes = 4096

    package static func parse(_ value: RESPValue) -> PubSubReply? {
        guard case .array(let parts) = value, parts.count == 3, case .bulkString(let kind) = parts[0],
            case .bulkString(let channel) = parts[1], !channel.isEmpty, channel.count <= Self.maximumChannelBytes
        else { return nil }
        switch (kind, parts[2]) {
        case (Array("message".utf8), .bulkString(let payload)) where payload.count <= Self.maximumPayloadBytes:
            return .message(channel: channel, payload: payload, sharded: false)
        case (Array("smessage".utf8), .bulkString(let payload)) where payload.count <= Self.maximumPayloadBytes:
            return .message(channel: channel, payload: payload, sharded: true)
        case (Array("subscribe".utf8), .integer(let count)) where count >= 0:
            return .subscribed(channel: channel, count: count, sharded: false)
        case (Array("ssubscribe".utf8), .integer(let count)) where count >= 0:
            return .subscribed(channel: channel, count: count, sharded: true)
        case (Array("unsubscribe".utf8), .integer(let count)) where count >= 0:
            return .unsubscribed(channel: channel, count: count, sharded: false)
        case (Array("sunsubscribe".utf8), .integer(let count)) where count >= 0:
            return .unsubscribed(channel: channel, count: count, sharded: true)
        default:
            return nil
        }
    }
}
