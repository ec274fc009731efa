import GatewayHTTP1
import GatewayHTTP1Oracle
import NIOCore

/// The strict HTTP/1 request parser (`HTTP1RequestParser`), differentially against llhttp
/// (swift-nio's `HTTPRequestDecoder` in an `EmbeddedChannel`: llhttp is a target of swift-nio,
/// not a product, so it cannot be a declared dependency of ours). For every input, fed whole
/// and cut into pieces (sizes from the first byte): it is refused by ours or framed identically
/// by both; ours gives the same requests and the same refusal however the input is cut; and
/// what it returns stays within its limits. Stateless; the fuzzer's thread.
enum HTTP1Target {
    /// Small, so the fuzzer reaches the limits within `-max_len`.
    static let maxHeaderBytes = 1024

    static func run(_ input: UnsafeBufferPointer<UInt8>) {
        let bytes = Array(input)
        let whole = [ByteBuffer(bytes: bytes)]
        let step = 1 + Int(bytes.first ?? 0) % 13
        let pieces = stride(from: 0, to: bytes.count, by: step).map {
            ByteBuffer(bytes: bytes[$0..<min($0 + step, bytes.count)])
        }
        let first = HTTP1Differential.run(whole, maxHeaderBytes: maxHeaderBytes)
        if case .diverged(let why) = first.verdict { invariant(false, "whole input: \(why)") }
        let second = HTTP1Differential.run(pieces, maxHeaderBytes: maxHeaderBytes)
        if case .diverged(let why) = second.verdict { invariant(false, "in pieces of \(step): \(why)") }
        invariant(
            first.ours.requests == second.ours.requests && first.ours.refusal == second.ours.refusal,
            "ours differs when the input is cut: \(first.ours.requests) \(first.ours.refusal ?? "-") vs "
                + "\(second.ours.requests) \(second.ours.refusal ?? "-")"
        )
        checkLimits(pieces)
    }

    /// Heads, field counts and trailers within the limits; body bytes never more than fed.
    static func checkLimits(_ pieces: [ByteBuffer]) {
        let limits = HTTP1Differential.limits(maxHeaderBytes: maxHeaderBytes)
        var parser = HTTP1RequestParser(limits: limits)
        var fed = 0
        var returned = 0
        var fields = 0
        for piece in pieces {
            fed += piece.readableBytes
            parser.feed(piece)
            while let event = parser.next() {
                switch event {
                case .head(let head):
                    returned += head.bytes.readableBytes
                    invariant(head.bytes.readableBytes <= limits.maxHeadBytes, "a head over the limit")
                    fields = head.fields.count
                    invariant(fields <= limits.maxHeaderCount, "more fields than the limit")
                    for field in head.fields {
                        invariant(field.line.upperBound <= head.bytes.readableBytes, "a field outside its head")
                    }
                case .body(let body):
                    returned += body.readableBytes
                case .end(let trailers):
                    if let trailers {
                        invariant(trailers.bytes.readableBytes <= limits.maxTrailerBytes, "trailers over the limit")
                        invariant(fields + trailers.fields.count <= limits.maxHeaderCount, "too many trailer fields")
                    }
                case .error:
                    break
                }
                invariant(returned <= fed, "the parser returned more bytes than it was fed")
            }
        }
    }
}
