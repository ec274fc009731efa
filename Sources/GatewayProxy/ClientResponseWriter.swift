import GatewayHTTP1
import NIOCore
import NIOHTTP1

/// Turns every response the gateway sends one client into bytes: forwarded upstream heads
/// (the upstream's status line and field lines copied as received, minus hop-by-hop and
/// `Connection`-nominated fields and those the gateway replaces, plus the gateway's: request
/// id, `RateLimit-*`, HSTS, the keep-alive decision and the framing), body bytes (chunked
/// when the head says so), the end with sanitized trailers, `100 Continue`, and the gateway's
/// own responses. A response to HEAD gets its head only: no body, no chunk terminator.
///
/// It remembers only how the body of the response in progress is framed. A value owned by
/// one `ProxyHandler`, so touched only on that connection's event loop.
struct ClientResponseWriter {
    /// How body bytes of the response in progress go on the wire.
    enum BodyFraming: Equatable {
        /// No body is written (HEAD, 204, 304, or no response in progress).
        case none
        /// As they are: the head has a Content-Length, or the body ends with the connection.
        case identity
        case chunked
    }

    private(set) var bodyFraming: BodyFraming = .none

    /// What the gateway adds to a forwarded head.
    struct Edits {
        var requestMinorVersion: Int
        var isHEAD: Bool
        var requestID: String
        /// The gateway means to keep the client connection after this response.
        var keepAlive: Bool
        /// `RateLimit-Policy`/`RateLimit`, replacing any the upstream sent.
        var rateLimitHeaders: [(name: String, value: String)] = []
        /// HSTS on TLS listeners, replacing the upstream's.
        var strictTransportSecurity: String?
    }

    /// The head the client gets for `head`, and whether the connection can stay open after
    /// it: not when the gateway closes, nor when an HTTP/1.0 client could find the end of
    /// the body only at the close (no length: the upstream's may have been nominated in its
    /// `Connection`).
    mutating func forwardedHead(
        _ head: HTTP1ResponseHead,
        _ edits: Edits,
        allocator: ByteBufferAllocator
    ) -> (bytes: ByteBuffer, keepAlive: Bool) {
        let mayHaveBody = head.status >= 200 && head.status != 204 && head.status != 304
        var buffer = allocator.buffer(capacity: head.bytes.readableBytes + 128)
        buffer.writeStaticString(edits.requestMinorVersion == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        buffer.writeString(String(head.status))
        buffer.writeStaticString(" ")
        var hasLength = false
        head.bytes.withUnsafeReadableBytes { bytes in
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[head.reason]))
            buffer.writeStaticString("\r\n")
            for field in head.fields {
                let name = field.name
                if ResponseFieldRules.isHopByHop(bytes, name)
                    || HTTP1Syntax.equalsIgnoringCase(bytes, name, "x-request-id")
                {
                    continue
                }
                if Self.isNominated(bytes, name, head.connection.nominated) { continue }
                if HTTP1Syntax.equalsIgnoringCase(bytes, name, "set-cookie"),
                    ResponseFieldRules.setsGatewayCookie(bytes, field.value)
                {
                    // The upstream may not plant (or clear) a session of the gateway's pages.
                    continue
                }
                if HTTP1Syntax.equalsIgnoringCase(bytes, name, "content-length") {
                    // A response that cannot have a body carries no framing fields.
                    guard mayHaveBody else { continue }
                    hasLength = true
                }
                if !edits.rateLimitHeaders.isEmpty, Self.isReplaced(bytes, name, edits.rateLimitHeaders) { continue }
                if edits.strictTransportSecurity != nil,
                    HTTP1Syntax.equalsIgnoringCase(bytes, name, "strict-transport-security")
                {
                    continue
                }
                buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[field.line]))
            }
        }
        Self.writeField(&buffer, "X-Request-Id", edits.requestID)
        let delimited = edits.requestMinorVersion != 0 || hasLength
        let keepAlive = edits.keepAlive && delimited
        if !keepAlive {
            buffer.writeStaticString("Connection: close\r\n")
        } else if edits.requestMinorVersion == 0 {
            buffer.writeStaticString("Connection: keep-alive\r\n")
        }
        for field in edits.rateLimitHeaders {
            Self.writeField(&buffer, field.name, field.value)
        }
        if let value = edits.strictTransportSecurity {
            Self.writeField(&buffer, "Strict-Transport-Security", value)
        }
        let framing: BodyFraming
        if !mayHaveBody {
            framing = .none
        } else if hasLength || edits.requestMinorVersion == 0 {
            framing = .identity
        } else {
            // What a GET would have got, even for HEAD (RFC 9110 §9.3.2).
            buffer.writeStaticString("Transfer-Encoding: chunked\r\n")
            framing = .chunked
        }
        buffer.writeStaticString("\r\n")
        self.bodyFraming = edits.isHEAD ? .none : framing
        return (buffer, keepAlive)
    }

    /// A response the gateway makes itself, head and body in one buffer (the body left out
    /// for HEAD); `fields` carry its Content-Length.
    mutating func ownResponse(
        status: Int,
        fields: HTTPHeaders,
        body: [UInt8],
        requestMinorVersion: Int,
        isHEAD: Bool,
        allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 256 + (isHEAD ? 0 : body.count))
        Self.writeStatusLine(&buffer, status: status, minorVersion: requestMinorVersion)
        for (name, value) in fields {
            Self.writeField(&buffer, name, value)
        }
        buffer.writeStaticString("\r\n")
        if !isHEAD {
            buffer.writeBytes(body)
        }
        self.bodyFraming = .none
        return buffer
    }

    /// `100 Continue`, for a client that waits for it before sending its body.
    static func continueHead(allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 25)
        buffer.writeStaticString("HTTP/1.1 100 Continue\r\n\r\n")
        return buffer
    }

    /// Hands `write` what goes on the wire for `buffer`, without copying it: nothing for a
    /// response without a body, the chunk's size line and CRLF around it when chunked.
    func body(_ buffer: ByteBuffer, allocator: ByteBufferAllocator, write: (ByteBuffer) -> Void) {
        switch self.bodyFraming {
        case .none:
            return
        case .identity:
            write(buffer)
        case .chunked:
            guard buffer.readableBytes > 0 else { return }
            var line = allocator.buffer(capacity: 20)
            line.writeString(String(buffer.readableBytes, radix: 16))
            line.writeStaticString("\r\n")
            write(line)
            write(buffer)
            line.moveReaderIndex(forwardBy: line.readableBytes - 2)
            write(line)
        }
    }

    /// The end of the response in progress: the last chunk with the trailers a client may
    /// see (see `ResponseFieldRules.isForbiddenTrailer`) when chunked, nothing otherwise.
    mutating func end(trailers: HTTP1Trailers?, allocator: ByteBufferAllocator) -> ByteBuffer? {
        defer { self.bodyFraming = .none }
        guard self.bodyFraming == .chunked else { return nil }
        guard let trailers else {
            var buffer = allocator.buffer(capacity: 5)
            buffer.writeStaticString("0\r\n\r\n")
            return buffer
        }
        var buffer = allocator.buffer(capacity: trailers.bytes.readableBytes + 5)
        buffer.writeStaticString("0\r\n")
        trailers.bytes.withUnsafeReadableBytes { bytes in
            for field in trailers.fields where !ResponseFieldRules.isForbiddenTrailer(bytes, field.name) {
                buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[field.line]))
            }
        }
        buffer.writeStaticString("\r\n")
        return buffer
    }

    private static func writeStatusLine(_ buffer: inout ByteBuffer, status: Int, minorVersion: Int) {
        buffer.writeStaticString(minorVersion == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        buffer.writeString(String(status))
        buffer.writeStaticString(" ")
        buffer.writeString(HTTPResponseStatus(statusCode: status).reasonPhrase)
        buffer.writeStaticString("\r\n")
    }

    private static func writeField(_ buffer: inout ByteBuffer, _ name: String, _ value: String) {
        buffer.writeString(name)
        buffer.writeStaticString(": ")
        buffer.writeString(value)
        buffer.writeStaticString("\r\n")
    }

    /// Whether `name` is one of the names the upstream's `Connection` listed.
    private static func isNominated(
        _ bytes: UnsafeRawBufferPointer,
        _ name: Range<Int>,
        _ nominated: [Range<Int>]
    ) -> Bool {
        for candidate in nominated where candidate.count == name.count {
            var equal = true
            for offset in 0..<name.count
            where HTTP1Syntax.lowercased(bytes[name.lowerBound + offset])
                != HTTP1Syntax.lowercased(bytes[candidate.lowerBound + offset])
            {
                equal = false
                break
            }
            if equal { return true }
        }
        return false
    }

    /// Whether the gateway sets a field named `name` itself (its rate-limit fields).
    private static func isReplaced(
        _ bytes: UnsafeRawBufferPointer,
        _ name: Range<Int>,
        _ fields: [(name: String, value: String)]
    ) -> Bool {
        for field in fields where field.name.utf8.count == name.count {
            var index = name.lowerBound
            var equal = true
            for byte in field.name.utf8 {
                if HTTP1Syntax.lowercased(bytes[index]) != HTTP1Syntax.lowercased(byte) {
                    equal = false
                    break
                }
                index += 1
            }
            if equal { return true }
        }
        return false
    }
}
