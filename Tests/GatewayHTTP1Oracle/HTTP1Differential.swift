package import GatewayHTTP1
package import NIOCore
import NIOEmbedded
import NIOHTTP1

/// One request as a parser framed it, in values both parsers can produce: what the
/// differential comparison looks at. A value; any thread.
package struct FramedRequest: Equatable, Sendable, CustomStringConvertible {
    package var method: String
    package var target: String
    package var minorVersion: Int
    package var headers: [[String]]
    package var body: [UInt8] = []
    package var trailers: [[String]]?
    package var complete = false

    package var description: String {
        "\(method) \(target) HTTP/1.\(minorVersion) \(headers) body=\(body.count)B "
            + "trailers=\(trailers.map { "\($0)" } ?? "nil") complete=\(complete)"
    }
}

/// Everything one parser made of an input: the requests it framed (the last one possibly
/// incomplete) and whether it refused the input. A value; any thread.
package struct FramedOutcome: Sendable {
    package var requests: [FramedRequest] = []
    package var refusal: String?
    /// Ours only: it read nothing after its last request (`Connection: close`, HTTP/1.0
    /// without keep-alive, an upgrade).
    package var stopped = false
}

/// The outcome of comparing our parser with llhttp on one input. A value; any thread.
package enum DifferentialVerdict: Equatable, Sendable {
    /// Both framed the same requests (or llhttp refused what ours has not finished framing).
    case identical
    /// Ours refused after framing the same requests as llhttp up to that point; `llhttpAccepted`
    /// says whether llhttp framed the whole input without refusing it (a stricter rule of ours).
    case oursRefused(HTTP1ParseError, llhttpAccepted: Bool)
    /// Ours ended the connection after a request (close or upgrade) where llhttp read on:
    /// the requests after it are never served, a stricter keep-alive rule of ours.
    case oursStopped
    /// Ours framed something llhttp did not frame the same way: a bug.
    case diverged(String)
}

/// Runs an input through our `HTTP1RequestParser` and through swift-nio's `HTTPRequestDecoder`
/// (llhttp inside, strict, in an `EmbeddedChannel` with the limits the gateway configures) and
/// compares their framing. Shared by the differential tests and the `http1` fuzz target.
/// Stateless; the caller's thread.
package enum HTTP1Differential {
    /// The limits of both parsers for `[server] max_header_bytes` = `maxHeaderBytes`.
    package static func limits(maxHeaderBytes: Int) -> HTTP1ParserLimits {
        HTTP1ParserLimits(maxHeaderBytes: maxHeaderBytes)
    }

    /// Feeds `pieces` in order to both parsers and compares what they framed.
    package static func run(
        _ pieces: [ByteBuffer],
        maxHeaderBytes: Int
    ) -> (
        verdict: DifferentialVerdict, ours: FramedOutcome, llhttp: FramedOutcome
    ) {
        let (ours, error) = Self.ours(pieces, limits: Self.limits(maxHeaderBytes: maxHeaderBytes))
        let llhttp = Self.llhttp(pieces, maxHeaderBytes: maxHeaderBytes)
        return (Self.compare(ours: ours, error: error, llhttp: llhttp), ours, llhttp)
    }

    package static func ours(_ pieces: [ByteBuffer], limits: HTTP1ParserLimits) -> (FramedOutcome, HTTP1ParseError?) {
        var parser = HTTP1RequestParser(limits: limits)
        var outcome = FramedOutcome()
        for piece in pieces {
            parser.feed(piece)
            while let event = parser.next() {
                switch event {
                case .head(let head):
                    outcome.requests.append(
                        FramedRequest(
                            method: head.method.rawValue,
                            target: text(head.bytes, head.target),
                            minorVersion: head.minorVersion,
                            headers: head.fields.map { [text(head.bytes, $0.name), text(head.bytes, $0.value)] }
                        )
                    )
                case .body(let bytes):
                    outcome.requests[outcome.requests.count - 1].body += bytes.readableBytesView
                case .end(let trailers):
                    outcome.requests[outcome.requests.count - 1].complete = true
                    outcome.requests[outcome.requests.count - 1].trailers = trailers.map { trailers in
                        trailers.fields.map { [text(trailers.bytes, $0.name), text(trailers.bytes, $0.value)] }
                    }
                case .error(let error):
                    outcome.refusal = "\(error)"
                    return (outcome, error)
                }
            }
        }
        outcome.stopped = parser.isStopped
        return (outcome, nil)
    }

    private static func text(_ buffer: ByteBuffer, _ range: Range<Int>) -> String {
        String(decoding: buffer.readableBytesView.dropFirst(range.lowerBound).prefix(range.count), as: UTF8.self)
    }

    package static func llhttp(_ pieces: [ByteBuffer], maxHeaderBytes: Int) -> FramedOutcome {
        // The gateway's ProxyPipeline configuration.
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderListSize = maxHeaderBytes
        limits.maxHeaderFieldSize = maxHeaderBytes
        limits.maxHeaderFieldCount = 256
        let channel = EmbeddedChannel(
            handler: ByteToMessageHandler(
                HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes, limitConfiguration: limits)
            )
        )
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        var outcome = FramedOutcome()
        for piece in pieces {
            do {
                try channel.writeInbound(piece)
            } catch {
                outcome.refusal = "\(error)"
            }
            while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
                switch part {
                case .head(let head):
                    outcome.requests.append(
                        FramedRequest(
                            // NIO spells M-SEARCH without its dash.
                            method: head.method == .MSEARCH ? "M-SEARCH" : head.method.rawValue,
                            target: head.uri,
                            minorVersion: head.version.major == 1 ? head.version.minor : -1,
                            headers: head.headers.map { [$0.name, Self.withoutTrailingWhitespace($0.value)] }
                        )
                    )
                case .body(let bytes):
                    outcome.requests[outcome.requests.count - 1].body += bytes.readableBytesView
                case .end(let trailers):
                    outcome.requests[outcome.requests.count - 1].complete = true
                    outcome.requests[outcome.requests.count - 1].trailers = trailers.map {
                        $0.map { [$0.name, Self.withoutTrailingWhitespace($0.value)] }
                    }
                }
            }
            if outcome.refusal != nil { break }
        }
        return outcome
    }

    /// llhttp hands a field value on with the whitespace before its CRLF; RFC 9110 says that
    /// whitespace is not part of the value, and ours leaves it out (the line is forwarded
    /// verbatim either way): the one normalisation of the comparison.
    private static func withoutTrailingWhitespace(_ value: String) -> String {
        var bytes = Substring(value).utf8[...]
        while let last = bytes.last, last == 0x20 || last == 0x09 { bytes = bytes.dropLast() }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Every request ours framed (a head is acted upon as soon as it is read) must be framed
    /// identically by llhttp; ours may refuse where llhttp does not, never the reverse while
    /// it keeps framing.
    package static func compare(
        ours: FramedOutcome,
        error: HTTP1ParseError?,
        llhttp: FramedOutcome
    ) -> DifferentialVerdict {
        for (index, request) in ours.requests.enumerated() {
            guard index < llhttp.requests.count else {
                return .diverged("ours framed request \(index) (\(request)), llhttp did not (\(llhttp.refusal ?? "-"))")
            }
            let other = llhttp.requests[index]
            var head = request
            head.body = other.body
            head.trailers = other.trailers
            head.complete = other.complete
            guard head == other else {
                return .diverged("request \(index): ours \(request), llhttp \(other)")
            }
            if request.complete {
                guard other.complete, request.body == other.body, Self.sameTrailers(request.trailers, other.trailers)
                else {
                    return .diverged("request \(index) ended: ours \(request), llhttp \(other)")
                }
            } else {
                guard other.body.starts(with: request.body) else {
                    return .diverged("request \(index) body: ours \(request), llhttp \(other)")
                }
                if error == nil, llhttp.refusal == nil, other.complete || request.body != other.body {
                    return .diverged("request \(index) incomplete: ours \(request), llhttp \(other)")
                }
            }
        }
        if let error {
            return .oursRefused(error, llhttpAccepted: llhttp.refusal == nil)
        }
        if ours.stopped, llhttp.requests.count > ours.requests.count {
            return .oursStopped
        }
        if llhttp.refusal == nil, llhttp.requests.count != ours.requests.count {
            return .diverged("llhttp framed \(llhttp.requests.count) requests, ours \(ours.requests.count)")
        }
        return .identical
    }

    /// NIO reports "no trailer fields" as nil or empty depending on the path; both mean none.
    private static func sameTrailers(_ left: [[String]]?, _ right: [[String]]?) -> Bool {
        (left ?? []) == (right ?? [])
    }
}
