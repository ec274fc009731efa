package import NIOCore

/// A strict, incremental HTTP/1.0 and 1.1 request parser over `ByteBuffer`s (RFC 9112): fed
/// bytes as they arrive (a head, a chunk-size line or a trailer may be split at any byte), it
/// returns one event at a time: a head (`HTTP1RequestHead`, offsets into the head's own
/// bytes, no Strings), body bytes (slices of the input; chunked data decoded), the end of the
/// message with its trailers, or an error naming the rule broken. Pipelined requests follow
/// one another; after a message that closes the connection or switches protocols it reads
/// nothing more (`isStopped`).
///
/// It refuses everything the gateway's previous path (llhttp in strict mode plus
/// `RequestValidation`) refused, and more: see `HTTP1ParseError`. What it buffers is bounded
/// by `HTTP1ParserLimits`, except bytes fed after it stopped, which it keeps for the caller.
///
/// A value type owned by one connection's handler, touched only on its event loop.
package struct HTTP1RequestParser {
    private enum State {
        /// Reading a head (the builder holds what is read); offsets from `pending`'s reader index.
        case head
        case fixedBody(remaining: Int64)
        case chunkLine
        case chunkData(remaining: Int64)
        case chunkDataEnd
        case trailers
        /// The message ended: `.end` is the next event.
        case ending(HTTP1Trailers?)
        case stopped
        case failed
    }

    package let limits: HTTP1ParserLimits
    private var state: State = .head
    private var pending = ByteBuffer()
    private var builder = HTTP1HeadBuilder()
    // Line scanning of a head or trailer section, from `pending`'s reader index.
    private var lineStart = 0
    private var searchFrom = 0
    private var skippedEmptyLines = 0
    private var headBytes = 0
    private var fieldCount = 0
    private var trailerFields: [HTTP1Field] = []
    private var continuesAfterMessage = true

    /// What was read of the request the last `.error` refused, when its request line was
    /// complete (an error in a head only: a body's error belongs to a head already returned).
    package private(set) var refusedRequest: HTTP1RefusedRequest?

    package init(limits: HTTP1ParserLimits) {
        self.limits = limits
    }

    /// Whether the parser reads nothing more: the last message closed the connection or
    /// switched protocols (or an error was returned).
    package var isStopped: Bool {
        switch self.state {
        case .stopped, .failed: true
        default: false
        }
    }

    /// Bytes fed but not parsed (after `isStopped`: what follows an upgrade request).
    package var unparsedBytes: ByteBuffer {
        self.pending
    }

    /// Adds bytes read from the connection; call `next()` until it returns nil.
    package mutating func feed(_ buffer: ByteBuffer) {
        if case .failed = self.state { return }
        if self.pending.readableBytes == 0 {
            self.pending = buffer
        } else {
            var buffer = buffer
            self.pending.writeBuffer(&buffer)
        }
    }

    /// The next event the bytes fed so far make; nil when more bytes are needed (or after
    /// the parser stopped).
    package mutating func next() -> HTTP1RequestEvent? {
        do {
            return try self.step()
        } catch {
            if case .head = self.state, self.refusedRequest == nil {
                self.refusedRequest = self.pending.withUnsafeReadableBytes { self.builder.refused($0) }
            }
            self.state = .failed
            self.pending = ByteBuffer()
            return .error(error)
        }
    }

    private mutating func step() throws(HTTP1ParseError) -> HTTP1RequestEvent? {
        while true {
            switch self.state {
            case .stopped, .failed:
                return nil
            case .ending(let trailers):
                self.state = self.continuesAfterMessage ? .head : .stopped
                self.fieldCount = 0
                self.headBytes = 0
                return .end(trailers)
            case .head:
                guard let head = try self.readHead() else { return nil }
                return .head(head)
            case .fixedBody(let remaining):
                guard self.pending.readableBytes > 0 else { return nil }
                let length = Int(min(remaining, Int64(self.pending.readableBytes)))
                let left = remaining - Int64(length)
                self.state = left == 0 ? .ending(nil) : .fixedBody(remaining: left)
                return .body(self.pending.readSlice(length: length)!)
            case .chunkData(let remaining):
                guard self.pending.readableBytes > 0 else { return nil }
                let length = Int(min(remaining, Int64(self.pending.readableBytes)))
                let left = remaining - Int64(length)
                self.state = left == 0 ? .chunkDataEnd : .chunkData(remaining: left)
                return .body(self.pending.readSlice(length: length)!)
            case .chunkDataEnd:
                guard let first = self.pending.getInteger(at: self.pending.readerIndex, as: UInt8.self) else {
                    return nil
                }
                guard first == HTTP1Syntax.cr else { throw .bareLF }
                guard let second = self.pending.getInteger(at: self.pending.readerIndex + 1, as: UInt8.self) else {
                    return nil
                }
                guard second == HTTP1Syntax.lf else { throw .bareCR }
                self.pending.moveReaderIndex(forwardBy: 2)
                self.state = .chunkLine
            case .chunkLine:
                guard try self.readChunkLine() else { return nil }
            case .trailers:
                guard let trailers = try self.readTrailers() else { return nil }
                self.state = .ending(trailers.fields.isEmpty ? nil : trailers)
            }
        }
    }

    // MARK: - Heads

    private mutating func readHead() throws(HTTP1ParseError) -> HTTP1RequestHead? {
        let buffer = self.pending
        let outcome = try buffer.withUnsafeReadableBytes { bytes throws(HTTP1ParseError) in
            try self.scanHead(bytes)
        }
        switch outcome {
        case .needMore:
            return nil
        case .skip(let count):
            self.pending.moveReaderIndex(forwardBy: count)
            return try self.readHead()
        case .complete(let length):
            let bytes = self.pending.readSlice(length: length)!
            let head: HTTP1RequestHead
            do {
                head = try self.builder.finish(bytes)
            } catch {
                // The head's bytes are no longer at the front of `pending`.
                self.refusedRequest = bytes.withUnsafeReadableBytes { self.builder.refused($0) }
                throw error
            }
            self.headBytes = length
            self.continuesAfterMessage = head.keepAlive && !head.isUpgrade
            switch head.framing {
            case .none, .untilClose: self.state = .ending(nil)
            case .contentLength(let length): self.state = .fixedBody(remaining: length)
            case .chunked: self.state = .chunkLine
            }
            self.builder = HTTP1HeadBuilder()
            self.resetLines()
            self.skippedEmptyLines = 0
            return head
        }
    }

    private enum HeadScan {
        case needMore
        case skip(Int)
        case complete(length: Int)
    }

    private mutating func scanHead(_ bytes: UnsafeRawBufferPointer) throws(HTTP1ParseError) -> HeadScan {
        if !self.builder.sawRequestLine, self.lineStart == 0 {
            // Empty lines before a request line are ignored (RFC 9112 §2.2), CRLF ones only.
            var index = 0
            while index + 1 < bytes.count, bytes[index] == HTTP1Syntax.cr, bytes[index + 1] == HTTP1Syntax.lf {
                index += 2
            }
            if index > 0 {
                self.skippedEmptyLines += index
                guard self.skippedEmptyLines <= self.limits.maxHeadBytes else { throw .headTooLarge }
                return .skip(index)
            }
        }
        while true {
            let lf: Int
            switch try self.findLineEnd(bytes, within: self.limits.maxHeadBytes - self.skippedEmptyLines) {
            case .needMore: return .needMore
            case .overLimit: throw .headTooLarge
            case .found(let index): lf = index
            }
            let start = self.lineStart
            self.lineStart = lf + 1
            self.searchFrom = lf + 1
            if !self.builder.sawRequestLine {
                try self.builder.requestLine(bytes, start..<(lf - 1))
            } else if lf - 1 == start {
                return .complete(length: lf + 1)
            } else {
                self.fieldCount += 1
                guard self.fieldCount <= self.limits.maxHeaderCount else { throw .tooManyHeaderFields }
                try self.builder.field(bytes, start..<(lf + 1))
            }
        }
    }

    private enum LineEnd {
        case found(Int)
        case needMore
        /// No line end within the limit: refused whatever the bytes after it.
        case overLimit
    }

    /// The LF ending the line at `lineStart`, checking that it follows a CR and that no other
    /// CR is in the line. Only the first `limit` bytes are looked at, so the outcome is the same
    /// however the input was cut (a byte past the limit never decides between two refusals).
    private mutating func findLineEnd(
        _ bytes: UnsafeRawBufferPointer,
        within limit: Int
    ) throws(HTTP1ParseError) -> LineEnd {
        let end = min(bytes.count, limit)
        var index = self.searchFrom
        while index < end {
            let byte = bytes[index]
            if byte == HTTP1Syntax.lf {
                guard index > self.lineStart, bytes[index - 1] == HTTP1Syntax.cr else { throw .bareLF }
                return .found(index)
            }
            if byte == HTTP1Syntax.cr, index + 1 < end, bytes[index + 1] != HTTP1Syntax.lf {
                throw .bareCR
            }
            index += 1
        }
        if bytes.count >= limit { return .overLimit }
        // A CR at the very end is checked again with the byte after it.
        self.searchFrom = end > self.searchFrom && bytes[end - 1] == HTTP1Syntax.cr ? end - 1 : end
        return .needMore
    }

    private mutating func resetLines() {
        self.lineStart = 0
        self.searchFrom = 0
    }

    // MARK: - Chunked bodies

    /// Reads a chunk-size line; false when it is not complete yet.
    private mutating func readChunkLine() throws(HTTP1ParseError) -> Bool {
        let limit = self.limits.maxChunkLineBytes
        let buffer = self.pending
        let parsed = try buffer.withUnsafeReadableBytes { bytes throws(HTTP1ParseError) -> (Int, Int64)? in
            var lf = 0
            let end = min(bytes.count, limit + 2)
            while lf < end, bytes[lf] != HTTP1Syntax.lf { lf += 1 }
            guard lf < end else {
                if bytes.count >= limit + 2 { throw .chunkLineTooLong }
                return nil
            }
            guard lf > 0, bytes[lf - 1] == HTTP1Syntax.cr else { throw .bareLF }
            guard lf - 1 <= limit else { throw .chunkLineTooLong }
            return (lf + 1, try Self.chunkSize(bytes, 0..<(lf - 1)))
        }
        guard let (length, size) = parsed else { return false }
        self.pending.moveReaderIndex(forwardBy: length)
        if size == 0 {
            self.state = .trailers
            self.resetLines()
            self.trailerFields = []
        } else {
            self.state = .chunkData(remaining: size)
        }
        return true
    }

    /// `1*HEXDIG *( ";" token [ "=" ( token / quoted-string ) ] )`, no whitespace.
    static func chunkSize(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) throws(HTTP1ParseError) -> Int64 {
        var index = line.lowerBound
        var size: Int64 = 0
        while index < line.upperBound, let digit = HTTP1Syntax.hexValue(bytes[index]) {
            guard size <= (Int64.max >> 4) else { throw .invalidChunkSize }
            size = size << 4 | Int64(digit)
            index += 1
        }
        guard index > line.lowerBound else { throw .invalidChunkSize }
        guard index == line.upperBound || bytes[index] == UInt8(ascii: ";") else { throw .invalidChunkSize }
        while index < line.upperBound {
            guard bytes[index] == UInt8(ascii: ";") else { throw .invalidChunkExtension }
            index += 1
            let nameStart = index
            while index < line.upperBound, HTTP1Syntax.isToken(bytes[index]) { index += 1 }
            guard index > nameStart else { throw .invalidChunkExtension }
            guard index < line.upperBound, bytes[index] == UInt8(ascii: "=") else { continue }
            index += 1
            guard index < line.upperBound else { throw .invalidChunkExtension }
            if bytes[index] == UInt8(ascii: "\"") {
                index = try Self.quotedStringEnd(bytes, from: index + 1, end: line.upperBound)
            } else {
                let valueStart = index
                while index < line.upperBound, HTTP1Syntax.isToken(bytes[index]) { index += 1 }
                guard index > valueStart else { throw .invalidChunkExtension }
            }
        }
        return size
    }

    /// The index after the closing quote of a quoted-string whose content starts at `from`.
    private static func quotedStringEnd(
        _ bytes: UnsafeRawBufferPointer,
        from: Int,
        end: Int
    ) throws(HTTP1ParseError) -> Int {
        var index = from
        while index < end {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                return index + 1
            case UInt8(ascii: "\\"):
                guard index + 1 < end, HTTP1Syntax.isFieldValueByte(bytes[index + 1]) else {
                    throw .invalidChunkExtension
                }
                index += 2
            default:
                guard HTTP1Syntax.isFieldValueByte(byte) else { throw .invalidChunkExtension }
                index += 1
            }
        }
        throw .invalidChunkExtension
    }

    // MARK: - Trailers

    private mutating func readTrailers() throws(HTTP1ParseError) -> HTTP1Trailers? {
        let buffer = self.pending
        let length = try buffer.withUnsafeReadableBytes { bytes throws(HTTP1ParseError) -> Int? in
            try self.scanTrailers(bytes)
        }
        guard let length else { return nil }
        let trailers = HTTP1Trailers(bytes: self.pending.readSlice(length: length)!, fields: self.trailerFields)
        self.trailerFields = []
        self.resetLines()
        return trailers
    }

    private mutating func scanTrailers(_ bytes: UnsafeRawBufferPointer) throws(HTTP1ParseError) -> Int? {
        let headRoom = self.limits.maxHeadBytes - self.headBytes
        let limit = min(self.limits.maxTrailerBytes, headRoom)
        while true {
            let lf: Int
            switch try self.findLineEnd(bytes, within: limit) {
            case .needMore: return nil
            case .overLimit: throw limit == headRoom ? .headTooLarge : .trailersTooLarge
            case .found(let index): lf = index
            }
            let start = self.lineStart
            self.lineStart = lf + 1
            self.searchFrom = lf + 1
            if lf - 1 == start { return lf + 1 }
            self.fieldCount += 1
            guard self.fieldCount <= self.limits.maxHeaderCount else { throw .tooManyHeaderFields }
            let field = try HTTP1HeadBuilder.parseField(bytes, start..<(lf + 1))
            if HTTP1Syntax.equalsIgnoringCase(bytes, field.name, "content-length")
                || HTTP1Syntax.equalsIgnoringCase(bytes, field.name, "transfer-encoding")
                || HTTP1Syntax.equalsIgnoringCase(bytes, field.name, "connection")
                || HTTP1Syntax.equalsIgnoringCase(bytes, field.name, "upgrade")
            {
                throw .framingTrailerField
            }
            self.trailerFields.append(field)
        }
    }
}
