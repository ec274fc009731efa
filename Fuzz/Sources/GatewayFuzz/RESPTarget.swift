import GatewayRedis

/// The RESP reader (the frame scanner in front of hiredis). Fed all at once or a byte at a
/// time, it must return the same replies; whenever hiredis is between replies the scanner
/// must be too (else their framing disagrees and the scanner's limits guard the wrong
/// bytes); each reply, encoded again, reads back equal. Stateless; the fuzzer's thread.
enum RESPTarget {
    static func run(_ input: UnsafeBufferPointer<UInt8>) {
        let bytes = Array(input)
        let whole = read([bytes])
        let piecewise = read(bytes.map { [$0] })
        if whole.failed {
            invariant(piecewise.replies.starts(with: whole.replies), "byte-wise replies differ from whole-feed replies")
        } else {
            invariant(!piecewise.failed, "byte-wise feeding fails where one feed does not")
            invariant(piecewise.replies == whole.replies, "byte-wise replies differ from whole-feed replies")
        }
        for reply in whole.replies {
            let again = read([encode(reply)])
            invariant(!again.failed && again.replies == [reply], "reply \(reply) does not survive a round trip")
        }
    }

    static func read(_ chunks: [[UInt8]]) -> (replies: [RESPValue], failed: Bool) {
        let reader = RESPReader()
        var replies: [RESPValue] = []
        do {
            for chunk in chunks {
                try reader.feed(chunk)
                while let reply = try reader.next() { replies.append(reply) }
                invariant(reader.framingAgrees, "the frame scanner and hiredis disagree on a reply boundary")
            }
        } catch {
            return (replies, true)
        }
        return (replies, false)
    }

    static func encode(_ value: RESPValue) -> [UInt8] {
        switch value {
        case .simpleString(let text): return Array("+\(text)\r\n".utf8)
        case .error(let text): return Array("-\(text)\r\n".utf8)
        case .integer(let number): return Array(":\(number)\r\n".utf8)
        case .bulkString(let bytes): return Array("$\(bytes.count)\r\n".utf8) + bytes + Array("\r\n".utf8)
        case .null: return Array("$-1\r\n".utf8)
        case .array(let values): return Array("*\(values.count)\r\n".utf8) + values.flatMap(encode)
        }
    }
}
