import GatewayRedis
import GatewayRedisTestSupport
import Testing

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

@Suite struct RESPCommandTests {
    @Test func encodesTextCommand() {
        #expect(RESPCommand.encode(["SET", "k", "v"]) == bytes("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"))
    }

    @Test func encodesSingleArgument() {
        #expect(RESPCommand.encode(["PING"]) == bytes("*1\r\n$4\r\nPING\r\n"))
    }

    @Test func encodesLengthsInBytesForMultibyteText() {
        #expect(RESPCommand.encode(["GET", "caf\u{E9}"]) == bytes("*2\r\n$3\r\nGET\r\n$5\r\ncaf\u{E9}\r\n"))
    }

    @Test func encodesBinaryArgumentsVerbatim() {
        let binary: [UInt8] = [0x00, 0xFF, 0x0D, 0x0A, 0x24, 0x00]
        let encoded = RESPCommand.encode([bytes("SET"), bytes("k"), binary])
        let expected = bytes("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$6\r\n") + binary + bytes("\r\n")
        #expect(encoded == expected)
    }

    @Test func encodesEmptyArgumentsAsZeroLengthBulkStrings() {
        #expect(
            RESPCommand.encode([bytes("SET"), bytes("k"), []]) == bytes("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n")
        )
        #expect(RESPCommand.encode(["SET", "", ""]) == bytes("*3\r\n$3\r\nSET\r\n$0\r\n\r\n$0\r\n\r\n"))
    }

    @Test func encodesLargeArgument() {
        let value = [UInt8](repeating: 0x61, count: 100_000)
        let encoded = RESPCommand.encode([bytes("SET"), bytes("k"), value])
        let expected = bytes("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n") + value + bytes("\r\n")
        #expect(encoded == expected)
    }
}

@Suite struct RESPReaderTests {
    private func parseAll(_ text: String) throws -> [RESPValue] {
        let reader = RESPReader()
        try reader.feed(bytes(text))
        var values: [RESPValue] = []
        while let value = try reader.next() {
            values.append(value)
        }
        return values
    }

    @Test func parsesStatus() throws {
        #expect(try parseAll("+OK\r\n") == [.simpleString("OK")])
    }

    @Test func parsesError() throws {
        #expect(try parseAll("-ERR unknown command\r\n") == [.error("ERR unknown command")])
    }

    @Test func parsesIntegers() throws {
        #expect(
            try parseAll(":0\r\n:42\r\n:-7\r\n:9223372036854775807\r\n") == [
                .integer(0), .integer(42), .integer(-7), .integer(Int64.max),
            ]
        )
    }

    @Test func parsesBulkStrings() throws {
        #expect(try parseAll("$5\r\nhello\r\n$0\r\n\r\n") == [.bulkString(bytes("hello")), .bulkString([])])
    }

    @Test func parsesBinaryBulkString() throws {
        let reader = RESPReader()
        try reader.feed(bytes("$4\r\n") + [0x00, 0x0D, 0x0A, 0xFF] + bytes("\r\n"))
        #expect(try reader.next() == .bulkString([0x00, 0x0D, 0x0A, 0xFF]))
        #expect(try reader.next() == nil)
    }

    @Test func parsesNulls() throws {
        #expect(try parseAll("$-1\r\n*-1\r\n") == [.null, .null])
    }

    @Test func parsesNestedArray() throws {
        let text = "*3\r\n:1\r\n*2\r\n$3\r\nfoo\r\n-ERR x\r\n*0\r\n"
        #expect(
            try parseAll(text) == [
                .array([.integer(1), .array([.bulkString(bytes("foo")), .error("ERR x")]), .array([])])
            ]
        )
    }

    @Test func parsesArrayWithNullAndStatus() throws {
        #expect(
            try parseAll("*3\r\n$-1\r\n+QUEUED\r\n:5\r\n") == [.array([.null, .simpleString("QUEUED"), .integer(5)])]
        )
    }

    @Test func returnsRepliesInOrderThenNil() throws {
        let reader = RESPReader()
        try reader.feed(bytes("+A\r\n:2\r\n"))
        #expect(try reader.next() == .simpleString("A"))
        #expect(try reader.next() == .integer(2))
        #expect(try reader.next() == nil)
    }

    @Test func emptyReaderReturnsNil() throws {
        let reader = RESPReader()
        #expect(try reader.next() == nil)
        try reader.feed([UInt8]())
        #expect(try reader.next() == nil)
    }

    @Test func byteByByteFeedYieldsNilUntilComplete() throws {
        let message = bytes("*2\r\n$3\r\nfoo\r\n*1\r\n:12\r\n")
        let reader = RESPReader()
        for (index, byte) in message.enumerated() {
            try reader.feed([byte])
            let value = try reader.next()
            if index < message.count - 1 {
                #expect(value == nil, "complete after \(index + 1) of \(message.count) bytes")
            } else {
                #expect(value == .array([.bulkString(bytes("foo")), .array([.integer(12)])]))
            }
        }
        #expect(try reader.next() == nil)
    }

    @Test func bulkStringSplitAcrossFeeds() throws {
        let reader = RESPReader()
        try reader.feed(bytes("$10\r\nhello"))
        #expect(try reader.next() == nil)
        try reader.feed(bytes("world"))
        #expect(try reader.next() == nil)
        try reader.feed(bytes("\r\n+OK"))
        #expect(try reader.next() == .bulkString(bytes("helloworld")))
        #expect(try reader.next() == nil)
        try reader.feed(bytes("\r\n"))
        #expect(try reader.next() == .simpleString("OK"))
    }

    @Test func unknownTypeByteThrows() throws {
        let reader = RESPReader()
        #expect(throws: RESPReader.ProtocolError.self) {
            try reader.feed(bytes("?x\r\n"))
            _ = try reader.next()
        }
    }

    @Test func protocolErrorHasAMessageAndIsSticky() throws {
        let reader = RESPReader()
        try? reader.feed(bytes("?x\r\n"))
        var first: RESPReader.ProtocolError?
        do {
            _ = try reader.next()
        } catch {
            first = error
        }
        #expect(first != nil)
        #expect(first?.message.isEmpty == false)
        // The reader must be discarded after an error: nothing more is accepted.
        #expect(throws: RESPReader.ProtocolError.self) {
            try reader.feed(bytes("+OK\r\n"))
            _ = try reader.next()
        }
    }

    @Test func badIntegerThrows() throws {
        let reader = RESPReader()
        #expect(throws: RESPReader.ProtocolError.self) {
            try reader.feed(bytes(":12a\r\n"))
            _ = try reader.next()
        }
    }

    @Test func moderatelyNestedArrayParses() throws {
        // Seven arrays deep with an integer inside.
        let text = String(repeating: "*1\r\n", count: 7) + ":1\r\n"
        var expected = RESPValue.integer(1)
        for _ in 0..<7 { expected = .array([expected]) }
        #expect(try parseAll(text) == [expected])
    }

    @Test(arguments: [9, 10, 16])
    func arrayNestingDeeperThanEightThrows(depth: Int) throws {
        let text = String(repeating: "*1\r\n", count: depth) + ":1\r\n"
        let reader = RESPReader()
        #expect(throws: RESPReader.ProtocolError.self) {
            try reader.feed(bytes(text))
            _ = try reader.next()
        }
    }

    @Test func arrayWithTooManyElementsThrows() throws {
        let count = RESPReader.maximumArrayElements + 1
        var message = bytes("*\(count)\r\n")
        message.reserveCapacity(message.count + 4 * count)
        for _ in 0..<count {
            message += [UInt8(ascii: ":"), UInt8(ascii: "1"), 13, 10]
        }
        let reader = RESPReader()
        #expect(throws: RESPReader.ProtocolError.self) {
            try reader.feed(message)
            _ = try reader.next()
        }
    }

    /// The limits bound memory from a hostile server: a length header over the limit is
    /// refused from the header alone, before any payload is buffered.
    @Test func oversizedLengthHeadersAreRefusedBeforeThePayload() throws {
        let bulk = RESPReader()
        #expect(throws: RESPReader.ProtocolError.self) {
            try bulk.feed(bytes("$\(RESPReader.maximumBulkBytes + 1)\r\n"))
        }
        let array = RESPReader()
        #expect(throws: RESPReader.ProtocolError.self) {
            try array.feed(bytes("*\(RESPReader.maximumArrayElements + 1)\r\n"))
        }
        let nested = RESPReader()
        #expect(throws: RESPReader.ProtocolError.self) {
            try nested.feed(bytes(String(repeating: "*1\r\n", count: 9) + ":1\r\n"))
        }
        // Split across feeds, a header at exactly the limit is still accepted.
        let split = RESPReader()
        try split.feed(bytes("*2\r\n$3\r\nab"))
        #expect(try split.next() == nil)
        try split.feed(bytes("c\r\n:7\r\n"))
        #expect(try split.next() == .array([.bulkString(Array("abc".utf8)), .integer(7)]))
    }
}

/// Regressions found by the `resp` fuzz target (docs/fuzzing.md): the frame scanner in front
/// of hiredis must end lines where hiredis does (CRLF only), or its limits guard the wrong bytes.
@Suite struct RESPFrameScannerRegressionTests {
    /// The fuzzer's input: a bare LF inside an error line. The scanner used to end the line
    /// there while hiredis waited for CRLF.
    @Test func bareLineFeedInsideALineKeepsTheScannerInStepWithHiredis() throws {
        let input: [UInt8] = [
            0x2d, 0x2d, 0xa8, 0x22, 0x7b, 0xc2, 0x7b, 0x5b, 0x0a, 0x39, 0x2c, 0x39, 0x2d, 0x22, 0xc2, 0xc2,
            0x2a, 0xa8, 0x7b, 0x22, 0x7b, 0x22, 0xc2, 0xc2, 0x39, 0xc2, 0xc2, 0xc2, 0xc2, 0xc2, 0xc2, 0xc2,
        ]
        let reader = RESPReader()
        try reader.feed(input)
        #expect(try reader.next() == nil)
        #expect(reader.framingAgrees)
        try reader.feed(Array("\r\n".utf8))
        #expect(try reader.next() != nil)
        #expect(try reader.next() == nil)
        #expect(reader.framingAgrees)
    }

    /// What the disagreement allowed: the scanner took `$10` after a bare LF for a bulk
    /// header and skipped the next ten bytes as payload, while hiredis read those bytes as a
    /// header announcing a billion-element array, past the scanner's limit.
    @Test func anArrayHeaderHiddenBehindABareLineFeedIsStillRefused() throws {
        let reader = RESPReader()
        #expect(throws: RESPReader.ProtocolError.self) {
            try reader.feed(Array("+x\n$10\r\n*999999999\r\n".utf8))
        }
    }

    @Test func aBareLineFeedIsPartOfAStatusLine() throws {
        let reader = RESPReader()
        try reader.feed(Array("+OK\n$100000000\r\n".utf8))
        #expect(try reader.next() == .simpleString("OK\n$100000000"))
        #expect(reader.framingAgrees)
    }

    @Test func aLengthLineWithACarriageReturnInsideIsRefused() throws {
        let reader = RESPReader()
        #expect(throws: RESPReader.ProtocolError.self) { try reader.feed(Array("$1\r2\r\nab\r\n".utf8)) }
    }
}
