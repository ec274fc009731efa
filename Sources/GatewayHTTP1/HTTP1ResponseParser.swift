package import NIOCore

/// A strict, incremental parser of the responses on one upstream connection, one exchange at a
/// time: the head with `HTTP1ResponseHeadParser` (interim 1xx heads dropped), then the body by
/// the head's framing: a Content-Length body or an until-close body as slices of the input (no
/// copy), a chunked body de-chunked (strict chunk-size lines within `maxChunkLineBytes`, data
/// followed by CRLF, trailer fields checked like header fields within `maxTrailerBytes`).
///
/// `start(requestMethod:)` begins each exchange (the method decides HEAD framing); after
/// `.end` the parser returns nothing until the next `start`, and `bufferedBytes` says whether
/// bytes followed the response in the input (they are never parsed as the next response).
/// The connection's end is `finish()`: it ends an until-close body.
///
/// A value type owned by one upstream connection's handler, touched only on its event loop.
package struct HTTP1ResponseParser {
    private enum State {
        /// No exchange: `start` was not called, or the response ended.
        case idle
        case head
        case fixedBody(remaining: Int64)
        case untilClose
        case chunkLine
        case chunkData(remaining: Int64)
        case chunkDataEnd
        case trailers
        /// The response is complete: `.end` is the next event.
        case ending
        case failed
    }

    package let limits: HTTP1ParserLimits
    private var state: State = .idle
    private var pending = ByteBuffer()
    private var headParser: HTTP1ResponseHeadParser
    private var requestMethod: HTTP1Method = .GET
    private var headBytes = 0
    private var fieldCount = 0
    private var trailerFields: [HTTP1Field] = []
    // Line scanning of a trailer section, from `pending`'s reader index.
    private var lineStart = 0
    private var searchFrom = 0

    package init(limits: HTTP1ParserLimits) {
        self.limits = limits
        self.headParser = HTTP1ResponseHeadParser(limits: limits)
    }

    /// Begins the response to a request sent with `requestMethod`; bytes buffered from
    /// before are dropped.
    package mutating func start(requestMethod: HTTP1Method) {
        self.requestMethod = requestMethod
        self.state = .head
        self.pending = ByteBuffer()
        self.headParser = HTTP1ResponseHeadParser(limits: self.limits)
        self.headBytes = 0
        self.fieldCount = 0
        self.trailerFields = []
        self.lineStart = 0
        self.searchFrom = 0
    }

    /// Bytes fed and not consumed: after `.end`, what followed the response.
    package var bufferedBytes: Int { self.pending.readableBytes }

    /// Whether the body in progress ends only when the connection does.
    package var isReadingUntilClose: Bool {
        if case .untilClose = self.state { return true }
        return false
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

    /// The next event the bytes fed so far make; nil when more bytes are needed, or when no
    /// response is expected.
    package mutating func next() -> HTTP1ResponseEvent? {
        do {
            return try self.step()
        } catch {
            self.state = .failed
            self.pending = ByteBuffer()
            return .error(error)
        }
    }

    /// The connection ended: the end of an until-close body, nil otherwise (a response cut
    /// short is the caller's to fail).
    package mutating func finish() -> HTTP1ResponseEvent? {
        guard case .untilClose = self.state else { return nil }
        self.state = .idle
        return .end(nil)
    }

    private mutating func step() throws(HTTP1ParseError) -> HTTP1ResponseEvent? {
        while true {
            switch self.state {
            case .idle, .failed:
                return nil
            case .ending:
                self.state = .idle
                self.releaseStorage()
                return .end(nil)
            case .head:
                let before = self.pending.readableBytes
                guard let head = try self.headParser.parse(&self.pending, requestMethod: self.requestMethod) else {
                    return nil
                }
                // An interim response (100 Continue, 103 Early Hints): the final one follows.
                if head.isInformational { continue }
                self.headBytes = before - self.pending.readableBytes
                switch head.framing {
                case .none: self.state = .ending
                case .contentLength(let length): self.state = .fixedBody(remaining: length)
                case .chunked: self.state = .chunkLine
                case .untilClose: self.state = .untilClose
                }
                return .head(head)
            case .fixedBody(let remaining):
                guard self.pending.readableBytes > 0 else { return nil }
                let length = Int(min(remaining, Int64(self.pending.readableBytes)))
                let left = remaining - Int64(length)
                self.state = left == 0 ? .ending : .fixedBody(remaining: left)
                return .body(self.pending.readSlice(length: length)!)
            case .untilClose:
                guard self.pending.readableBytes > 0 else { return nil }
                return .body(self.pending.readSlice(length: self.pending.readableBytes)!)
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
                self.state = .idle
                self.releaseStorage()
                return .end(trailers.fields.isEmpty ? nil : trailers)
            }
        }
    }

    /// Between responses the parser holds no read buffer (a pooled connection may stay idle
    /// for long): an empty remainder still pins the storage of the read it came from.
    private mutating func releaseStorage() {
        if self.pending.readableBytes == 0 {
            self.pending = ByteBuffer()
        }
    }

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
            for index in 0..<(lf - 1) where bytes[index] == HTTP1Syntax.cr { throw .bareCR }
            return (lf + 1, try HTTP1RequestParser.chunkSize(bytes, 0..<(lf - 1)))
        }
        guard let (length, size) = parsed else { return false }
        self.pending.moveReaderIndex(forwardBy: length)
        if size == 0 {
            self.state = .trailers
            self.lineStart = 0
            self.searchFrom = 0
            self.trailerFields = []
        } else {
            self.state = .chunkData(remaining: size)
        }
        return true
    }

    private mutating func readTrailers() throws(HTTP1ParseError) -> HTTP1Trailers? {
        let buffer = self.pending
        let length = try buffer.withUnsafeReadableBytes { bytes throws(HTTP1ParseError) -> Int? in
            try self.scanTrailers(bytes)
        }
        guard let length else { return nil }
        let trailers = HTTP1Trailers(bytes: self.pending.readSlice(length: length)!, fields: self.trailerFields)
        self.trailerFields = []
        return trailers
    }

    /// Field lines up to the empty line, each checked like a header field; the section stays
    /// within `maxTrailerBytes` and, with the head, within `maxHeadBytes`. Fields that frame or
    /// steer the connection are read here and dropped by whoever forwards the trailers.
    private mutating func scanTrailers(_ bytes: UnsafeRawBufferPointer) throws(HTTP1ParseError) -> Int? {
        let headRoom = self.limits.maxHeadBytes - self.headBytes
        let limit = max(0, min(self.limits.maxTrailerBytes, headRoom))
        while true {
            let end = min(bytes.count, limit)
            var index = self.searchFrom
            var lf: Int?
            while index < end {
                let byte = bytes[index]
                if byte == HTTP1Syntax.lf {
                    guard index > self.lineStart, bytes[index - 1] == HTTP1Syntax.cr else { throw .bareLF }
                    lf = index
                    break
                }
                if byte == HTTP1Syntax.cr, index + 1 < end, bytes[index + 1] != HTTP1Syntax.lf { throw .bareCR }
                index += 1
            }
            guard let lf else {
                if bytes.count >= limit { throw limit == headRoom ? .headTooLarge : .trailersTooLarge }
                self.searchFrom = end > self.searchFrom && bytes[end - 1] == HTTP1Syntax.cr ? end - 1 : end
                return nil
            }
            let start = self.lineStart
            self.lineStart = lf + 1
            self.searchFrom = lf + 1
            if lf - 1 == start { return lf + 1 }
            self.fieldCount += 1
            guard self.fieldCount <= self.limits.maxHeaderCount else { throw .tooManyHeaderFields }
            self.trailerFields.append(try HTTP1HeadBuilder.parseField(bytes, start..<(lf + 1)))
        }
    }
}
