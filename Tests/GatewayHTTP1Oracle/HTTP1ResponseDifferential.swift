package import GatewayHTTP1
import NIOCore
import NIOEmbedded
import NIOHTTP1

/// Compares `HTTP1ResponseHeadParser` with llhttp (NIOHTTP1's `HTTPResponseDecoder`) on one
/// response head to a GET: a head ours accepts must be one llhttp accepts with the same status
/// and fields, and a body framed the way ours says must be read by llhttp to the same end.
/// Stateless; the caller's thread.
package enum HTTP1ResponseDifferential {
    package enum Verdict: Equatable, Sendable {
        case identical
        case oursRefused(HTTP1ParseError, llhttpAccepted: Bool)
        case diverged(String)
    }

    package static func run(_ head: [UInt8], maxHeaderBytes: Int) -> Verdict {
        var parser = HTTP1ResponseHeadParser(limits: HTTP1ParserLimits(maxHeaderBytes: maxHeaderBytes))
        var buffer = ByteBuffer(bytes: head)
        let ours: HTTP1ResponseHead
        do {
            // Not a whole head yet: nothing is framed.
            guard let parsed = try parser.parse(&buffer, requestMethod: .GET) else { return .identical }
            ours = parsed
        } catch {
            let llhttp = Self.llhttp(head, body: [], maxHeaderBytes: maxHeaderBytes)
            return .oursRefused(error, llhttpAccepted: llhttp.refusal == nil && llhttp.status != nil)
        }
        guard !ours.isInformational, ours.status != 101 else { return .identical }
        // llhttp is given the head ours read (not the bytes after it) and a body framed as ours says.
        let consumed = Array(head.prefix(head.count - buffer.readableBytes))
        let body: [UInt8]
        let expected: [UInt8]
        switch ours.framing {
        case .none:
            body = []
            expected = []
        case .untilClose:
            body = Array("abc".utf8)
            expected = body
        case .contentLength(let length):
            body = [UInt8](repeating: 120, count: Int(min(length, 64)))
            expected = body
        case .chunked:
            body = Array("3\r\nabc\r\n0\r\n\r\n".utf8)
            expected = Array("abc".utf8)
        }
        let llhttp = Self.llhttp(consumed, body: body, maxHeaderBytes: maxHeaderBytes)
        if let refusal = llhttp.refusal { return .diverged("llhttp refused what ours accepted: \(refusal)") }
        guard llhttp.status == ours.status else { return .diverged("status \(ours.status) vs \(llhttp.status ?? -1)") }
        let fields = ours.fields.map { [ours.string($0.name), ours.string($0.value)] }
        guard fields == llhttp.fields else { return .diverged("fields \(fields) vs \(llhttp.fields)") }
        switch ours.framing {
        case .untilClose:
            guard !llhttp.ended, llhttp.body == expected else {
                return .diverged("until close: llhttp ended=\(llhttp.ended) body=\(llhttp.body.count)B")
            }
        case .contentLength(let length) where length > 64:
            guard !llhttp.ended, llhttp.body == expected else { return .diverged("long body: llhttp ended early") }
        default:
            guard llhttp.ended, llhttp.body == expected else {
                return .diverged("\(ours.framing): llhttp ended=\(llhttp.ended) body=\(llhttp.body.count)B")
            }
        }
        return .identical
    }

    /// One whole response (head, body, trailers) to a request of `method`, then the close:
    /// a response ours accepts must be one llhttp reads to the same status, fields, body
    /// bytes, end and trailers (bytes after its end are ignored by both).
    package static func runMessage(_ bytes: [UInt8], method: HTTP1Method, maxHeaderBytes: Int) -> Verdict {
        let limits = HTTP1ParserLimits(maxHeaderBytes: maxHeaderBytes)
        var parser = HTTP1ResponseParser(limits: limits)
        parser.start(requestMethod: method)
        parser.feed(ByteBuffer(bytes: bytes))
        var ours = Outcome()
        var switched = false
        reading: while true {
            guard let event = parser.next() ?? parser.finish() else { break }
            switch event {
            case .head(let head):
                ours.status = head.status
                ours.fields = head.fields.map { [head.string($0.name), head.string($0.value)] }
                switched = head.status == 101
            case .body(let buffer):
                ours.body += buffer.readableBytesView
            case .end(let trailers):
                ours.ended = true
                ours.trailers = trailers.map { t in t.fields.map { [t.string($0.name), t.string($0.value)] } } ?? []
                break reading
            case .error(let error):
                let llhttp = Self.llhttp(bytes, body: [], method: method, maxHeaderBytes: maxHeaderBytes, close: true)
                return .oursRefused(error, llhttpAccepted: llhttp.refusal == nil && llhttp.ended)
            }
        }
        // A switch of protocols ends the parse for both; the connection refuses it.
        if switched { return .identical }
        let llhttp = Self.llhttp(bytes, body: [], method: method, maxHeaderBytes: maxHeaderBytes, close: true)
        guard ours.ended else {
            // Incomplete for ours: llhttp must not have read a whole response either.
            return llhttp.ended && llhttp.refusal == nil
                ? .diverged("llhttp ended a response ours did not") : .identical
        }
        if let refusal = llhttp.refusal, !llhttp.ended {
            return .diverged("llhttp refused what ours accepted: \(refusal)")
        }
        guard llhttp.status == ours.status, llhttp.fields == ours.fields else {
            return .diverged("head \(ours.status ?? -1) \(ours.fields) vs \(llhttp.status ?? -1) \(llhttp.fields)")
        }
        guard llhttp.ended, llhttp.body == ours.body else {
            return .diverged("body \(ours.body.count)B vs llhttp ended=\(llhttp.ended) \(llhttp.body.count)B")
        }
        guard llhttp.trailers == ours.trailers else {
            return .diverged("trailers \(ours.trailers) vs \(llhttp.trailers)")
        }
        return .identical
    }

    private struct Outcome {
        var status: Int?
        var fields: [[String]] = []
        var body: [UInt8] = []
        var ended = false
        var trailers: [[String]] = []
        var refusal: String?
    }

    private static func llhttp(
        _ head: [UInt8],
        body: [UInt8],
        method: HTTP1Method = .GET,
        maxHeaderBytes: Int,
        close: Bool = false
    ) -> Outcome {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderListSize = maxHeaderBytes
        limits.maxHeaderFieldSize = maxHeaderBytes
        limits.maxHeaderFieldCount = 256
        let channel = EmbeddedChannel(
            handler: ByteToMessageHandler(
                HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes, limitConfiguration: limits)
            )
        )
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        var outcome = Outcome()
        // The decoder frames a response by its request's method: announce a GET.
        _ = try? channel.writeOutbound(
            HTTPClientRequestPart.head(
                HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method.rawValue), uri: "/")
            )
        )
        do {
            try channel.writeInbound(ByteBuffer(bytes: head + body))
            if close {
                // The connection's end: an until-close body ends here.
                channel.pipeline.fireChannelInactive()
            }
        } catch {
            outcome.refusal = "\(error)"
        }
        while let part = try? channel.readInbound(as: HTTPClientResponsePart.self) {
            // Only the first final response counts.
            guard !outcome.ended else { break }
            switch part {
            case .head(let response):
                outcome.status = Int(response.status.code)
                outcome.fields = response.headers.map { [$0.name, Self.trimmed($0.value)] }
            case .body(let bytes):
                outcome.body += bytes.readableBytesView
            case .end(let trailers):
                outcome.ended = true
                outcome.trailers = trailers.map { $0.map { [$0.name, Self.trimmed($0.value)] } } ?? []
            }
        }
        if close, outcome.refusal == nil {
            do { try channel.throwIfErrorCaught() } catch { outcome.refusal = "\(error)" }
        }
        return outcome
    }

    private static func trimmed(_ value: String) -> String {
        var bytes = Substring(value).utf8[...]
        while let last = bytes.last, last == 0x20 || last == 0x09 { bytes = bytes.dropLast() }
        return String(decoding: bytes, as: UTF8.self)
    }
}
