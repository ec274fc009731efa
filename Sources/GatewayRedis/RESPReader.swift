import CGatewayHiredis

/// One decoded RESP (Redis protocol) reply.
package indirect enum RESPValue: Sendable, Hashable {
    case simpleString(String)
    case error(String)
    case integer(Int64)
    case bulkString([UInt8])
    case null
    case array([RESPValue])
}

/// Decodes RESP replies from a byte stream with hiredis's `redisReader`.
///
/// Owns one `redisReader*` and frees it in `deinit`. Feed bytes as they arrive from the
/// socket; `next()` returns complete replies in order and `nil` while a reply is partial.
/// Hostile input is bounded: a protocol error (including hiredis's own limits) is thrown
/// and the reader must be discarded together with its connection. Not thread-safe: one
/// owner on one event loop.
package final class RESPReader {
    /// A reply the server sent that the reader could not accept.
    package struct ProtocolError: Error, Hashable, Sendable {
        package var message: String
    }

    /// Largest bulk string or array accepted, and deepest nesting, to bound memory from a
    /// hostile or confused server.
    package static let maximumBulkBytes = 64 << 20
    package static let maximumArrayElements = 1 << 20

    private let reader: UnsafeMutablePointer<redisReader>
    private var failure: ProtocolError?
    private var scanner = RESPFrameScanner(
        maximumBulkBytes: RESPReader.maximumBulkBytes,
        maximumArrayElements: RESPReader.maximumArrayElements,
        maximumDepth: 8
    )

    package init() {
        guard let reader = redisReaderCreate() else {
            preconditionFailure("redisReaderCreate failed: out of memory")
        }
        // hiredis frees an emptied buffer larger than `maxbuf` (0 would mean never): keep
        // at most 16 KiB idle per connection after a large reply.
        cgw_redisReaderSetMaxBuf(reader, 16 * 1024)
        self.reader = reader
    }

    deinit {
        redisReaderFree(self.reader)
    }

    /// Appends bytes received from the server.
    package func feed(_ bytes: UnsafeRawBufferPointer) throws(ProtocolError) {
        if let failure = self.failure { throw failure }
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        do {
            try self.scanner.scan(bytes)
        } catch {
            switch error {
            case .invalid(let message): throw self.fail(message)
            }
        }
        if redisReaderFeed(self.reader, base.assumingMemoryBound(to: CChar.self), bytes.count) != cgw_REDIS_OK() {
            throw self.fail(self.errorMessage())
        }
    }

    package func feed(_ bytes: [UInt8]) throws(ProtocolError) {
        let result: ProtocolError? = bytes.withUnsafeBytes { pointer in
            do throws(ProtocolError) {
                try self.feed(pointer)
                return nil
            } catch {
                return error
            }
        }
        if let result { throw result }
    }

    /// The next complete reply, or nil if more bytes are needed.
    package func next() throws(ProtocolError) -> RESPValue? {
        if let failure = self.failure { throw failure }
        var raw: UnsafeMutableRawPointer?
        guard redisReaderGetReply(self.reader, &raw) == cgw_REDIS_OK() else {
            throw self.fail(self.errorMessage())
        }
        guard let raw else { return nil }
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(raw) }
        do {
            return try Self.convert(reply, depth: 0)
        } catch {
            throw self.fail(error.message)
        }
    }

    /// Whether the frame scanner and hiredis agree on where the stream stands: hiredis holds
    /// no partial reply exactly when the scanner is between replies. Meaningful once `next()`
    /// has returned nil; the fuzz target checks it, since a scanner out of step with hiredis
    /// would apply its limits to the wrong bytes.
    package var framingAgrees: Bool {
        let hiredisBetweenReplies = cgw_redisReaderIsBetweenReplies(self.reader) != 0
        return hiredisBetweenReplies == self.scanner.isAtReplyBoundary
    }

    /// Records the first protocol error: the stream position is lost, so every later
    /// call fails the same way.
    private func fail(_ message: String) -> ProtocolError {
        let error = ProtocolError(message: message)
        self.failure = error
        return error
    }

    private func errorMessage() -> String {
        withUnsafeBytes(of: self.reader.pointee.errstr) { bytes in
            let prefix = bytes.prefix(while: { $0 != 0 })
            return String(decoding: prefix, as: UTF8.self)
        }
    }

    private static func convert(
        _ reply: UnsafeMutablePointer<redisReply>,
        depth: Int
    ) throws(ProtocolError) -> RESPValue {
        guard depth < 8 else { throw ProtocolError(message: "reply nested deeper than 8 levels") }
        let value = reply.pointee
        switch value.type {
        case REDIS_REPLY_STRING:
            guard value.len <= maximumBulkBytes else {
                throw ProtocolError(message: "bulk string larger than \(maximumBulkBytes) bytes")
            }
            return .bulkString(bytes(value.str, value.len))
        case REDIS_REPLY_STATUS:
            return .simpleString(String(decoding: bytes(value.str, value.len), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: bytes(value.str, value.len), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            return .integer(value.integer)
        case REDIS_REPLY_NIL:
            return .null
        case REDIS_REPLY_ARRAY:
            guard value.elements <= maximumArrayElements else {
                throw ProtocolError(message: "array with more than \(maximumArrayElements) elements")
            }
            var elements: [RESPValue] = []
            elements.reserveCapacity(Int(value.elements))
            for index in 0..<Int(value.elements) {
                guard let element = value.element[index] else {
                    throw ProtocolError(message: "array element missing")
                }
                elements.append(try convert(element, depth: depth + 1))
            }
            return .array(elements)
        default:
            throw ProtocolError(message: "unsupported reply type \(value.type)")
        }
    }

    private static func bytes(_ pointer: UnsafeMutablePointer<CChar>?, _ length: Int) -> [UInt8] {
        guard let pointer, length > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: length))
    }
}
