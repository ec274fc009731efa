/// Checks the framing of a RESP byte stream as it arrives, before hiredis buffers or
/// allocates anything for it: bulk strings longer than `maximumBulkBytes`, arrays with
/// more than `maximumArrayElements` elements, nesting deeper than `maximumDepth`, over-long
/// status lines and unknown type bytes are refused from their header alone, so a hostile
/// or confused server cannot make the gateway allocate for a reply it announced.
///
/// A small state machine over bytes; it builds no values. Owned by one `RESPReader`.
struct RESPFrameScanner {
    enum Failure: Error {
        case invalid(String)
    }

    private enum Mode {
        case lineStart
        /// Inside a header line; `number` accumulates for `$` and `*`. A line ends at CRLF
        /// only, as hiredis reads it: `afterCR` says the previous byte was CR.
        case line(type: UInt8, number: Int, negative: Bool, digits: Int, length: Int, afterCR: Bool)
        /// Skipping a bulk payload and its CRLF.
        case bulk(remaining: Int)
    }

    let maximumBulkBytes: Int
    let maximumArrayElements: Int
    let maximumDepth: Int
    private static let maximumLineBytes = 64 * 1024

    private var mode: Mode = .lineStart
    /// Elements still expected by each open array, innermost last.
    private var open: [Int] = []

    init(maximumBulkBytes: Int, maximumArrayElements: Int, maximumDepth: Int) {
        self.maximumBulkBytes = maximumBulkBytes
        self.maximumArrayElements = maximumArrayElements
        self.maximumDepth = maximumDepth
    }

    /// Whether the bytes scanned so far end exactly at the end of a top-level reply.
    var isAtReplyBoundary: Bool {
        if case .lineStart = self.mode { return self.open.isEmpty }
        return false
    }

    mutating func scan(_ bytes: UnsafeRawBufferPointer) throws(Failure) {
        var index = 0
        while index < bytes.count {
            switch self.mode {
            case .bulk(let remaining):
                let take = min(remaining, bytes.count - index)
                index += take
                if take == remaining {
                    self.mode = .lineStart
                    self.itemCompleted()
                } else {
                    self.mode = .bulk(remaining: remaining - take)
                }
            case .lineStart:
                let type = bytes[index]
                switch type {
                case UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: ":"), UInt8(ascii: "$"), UInt8(ascii: "*"):
                    self.mode = .line(type: type, number: 0, negative: false, digits: 0, length: 0, afterCR: false)
                default:
                    throw .invalid("unknown RESP type byte \(type)")
                }
                index += 1
            case .line(let type, var number, var negative, var digits, var length, let afterCR):
                let byte = bytes[index]
                index += 1
                length += 1
                guard length <= Self.maximumLineBytes else { throw .invalid("RESP line longer than 64 KiB") }
                // hiredis ends a line at CRLF only: a bare LF is part of a status line, so
                // ending the line there too would put the scanner out of step with hiredis,
                // and its limits would then be applied to the wrong bytes.
                if byte == UInt8(ascii: "\n"), afterCR {
                    try self.lineEnded(type: type, number: negative ? -number : number, digits: digits)
                    continue
                }
                if type == UInt8(ascii: "$") || type == UInt8(ascii: "*") {
                    guard !afterCR else { throw .invalid("RESP length line has a CR without LF") }
                    switch byte {
                    case UInt8(ascii: "-") where digits == 0 && !negative:
                        negative = true
                    case UInt8(ascii: "0")...UInt8(ascii: "9"):
                        digits += 1
                        guard digits <= 10 else { throw .invalid("RESP length too long") }
                        number = number * 10 + Int(byte - 48)
                    case UInt8(ascii: "\r"):
                        break
                    default:
                        throw .invalid("RESP length is not a number")
                    }
                }
                self.mode = .line(
                    type: type,
                    number: number,
                    negative: negative,
                    digits: digits,
                    length: length,
                    afterCR: byte == UInt8(ascii: "\r")
                )
            }
        }
    }

    private mutating func lineEnded(type: UInt8, number: Int, digits: Int) throws(Failure) {
        self.mode = .lineStart
        switch type {
        case UInt8(ascii: "$"):
            guard digits > 0 else { throw .invalid("bulk string without a length") }
            if number == -1 {
                self.itemCompleted()
            } else if number < -1 || number > self.maximumBulkBytes {
                throw .invalid("bulk string of \(number) bytes announced (limit \(self.maximumBulkBytes))")
            } else {
                self.mode = .bulk(remaining: number + 2)
            }
        case UInt8(ascii: "*"):
            guard digits > 0 else { throw .invalid("array without a length") }
            if number == -1 || number == 0 {
                self.itemCompleted()
            } else if number < -1 || number > self.maximumArrayElements {
                throw .invalid("array of \(number) elements announced (limit \(self.maximumArrayElements))")
            } else {
                guard self.open.count < self.maximumDepth else {
                    throw .invalid("reply nested deeper than \(self.maximumDepth) levels")
                }
                self.open.append(number)
            }
        default:
            self.itemCompleted()
        }
    }

    private mutating func itemCompleted() {
        while let last = self.open.popLast() {
            if last > 1 {
                self.open.append(last - 1)
                return
            }
        }
    }
}
