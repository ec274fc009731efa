import GatewayHTTP1
import GatewayProxy
import NIOCore

/// Request-head validation and path normalisation: the input goes through the client
/// connection's strict parser, and a head it returns through the gateway's policy checks
/// (`RequestValidation`), whose verdict must stand on its own: an accepted head is
/// origin-form, has one `Host` on HTTP/1.1, never both framings, never CONNECT or TRACE,
/// and a length within the limit. The path normaliser gets the target read leniently from the
/// first line (whatever the parser says of it), so it must stand on its own too. Stateless;
/// the fuzzer's thread.
enum RequestHeadTarget {
    static func run(_ input: UnsafeBufferPointer<UInt8>) {
        // Lines split on bytes: in a Swift String, CRLF is one Character.
        let firstLine = input.prefix { $0 != UInt8(ascii: "\n") }
        let words = firstLine.split(separator: UInt8(ascii: " "), maxSplits: 2, omittingEmptySubsequences: false)
        if words.count > 1 {
            let target = String(decoding: words[1], as: UTF8.self)
            checkNormalization(String(target.prefix { $0 != "?" }))
        }
        checkHead(input)
    }

    static func checkHead(_ input: UnsafeBufferPointer<UInt8>) {
        var parser = HTTP1RequestParser(
            limits: HTTP1ParserLimits(
                maxHeadBytes: 16 * 1024,
                maxHeaderCount: 256,
                maxChunkLineBytes: 1024,
                maxTrailerBytes: 1024
            )
        )
        parser.feed(ByteBuffer(bytes: input))
        guard case .head(let head) = parser.next() else { return }
        let target = head.string(head.target)
        let maxBody: Int64 = 1 << 20
        switch RequestValidation.validate(head, maxBodyBytes: maxBody) {
        case .success(let framing):
            invariant(target.utf8.first == UInt8(ascii: "/"), "accepted a request target not in origin form")
            invariant(
                !target.utf8.contains(where: { $0 <= 0x20 || $0 >= 0x7F }),
                "accepted a target with CTL/SP/non-ASCII"
            )
            invariant(head.method != .CONNECT && head.method != .TRACE, "accepted \(head.method)")
            let names = head.fields.map { head.string($0.name).lowercased() }
            let hosts = names.filter { $0 == "host" }.count
            invariant(hosts <= 1, "accepted \(hosts) Host headers")
            if head.minorVersion == 1 { invariant(hosts == 1, "accepted an HTTP/1.1 request without Host") }
            let hasTE = names.contains("transfer-encoding")
            let hasCL = names.contains("content-length")
            invariant(!(hasTE && hasCL), "accepted both Content-Length and Transfer-Encoding")
            for field in head.fields {
                let name = head.string(field.name)
                let value = head.string(field.value)
                invariant(!name.isEmpty && !name.utf8.contains(where: { $0 <= 0x20 || $0 == 0x3A }), "bad name")
                invariant(!value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }), "CR/LF/NUL in a value")
            }
            switch framing {
            case .none, .untilClose: invariant(!hasTE, "a Transfer-Encoding request framed without a body")
            case .contentLength(let length):
                invariant(length > 0 && length <= maxBody, "Content-Length \(length) out of range")
                invariant(hasCL && !hasTE, "a length without Content-Length")
            case .chunked: invariant(hasTE && head.minorVersion == 1, "chunked without TE or on HTTP/1.0")
            }
        case .failure:
            break
        }
    }

    static func checkNormalization(_ path: String) {
        guard case .success(let normalized) = PathNormalizer.normalize(path) else { return }
        // Checked on bytes: a String compares Characters, and a combining mark after `/`
        // makes one Character of both.
        let bytes = Array(normalized.utf8)
        let slash = UInt8(ascii: "/")
        invariant(bytes.first == slash, "normalized path \(normalized) does not start with /")
        let segments = bytes.split(separator: slash, omittingEmptySubsequences: false).dropFirst()
        invariant(!segments.dropLast().contains { $0.isEmpty }, "normalized path \(normalized) has //")
        invariant(
            !segments.contains { $0.elementsEqual([46]) || $0.elementsEqual([46, 46]) },
            "normalized path \(normalized) has dot segments"
        )
        invariant(
            !bytes.contains(UInt8(ascii: ";")) && !bytes.contains(UInt8(ascii: "\\")),
            "normalized path \(normalized) has ; or \\"
        )
        switch PathNormalizer.normalize(normalized) {
        case .success(let again):
            invariant(again == normalized, "normalization not idempotent: \(path) -> \(normalized) -> \(again)")
        case .failure(let failure):
            invariant(false, "normalized path \(normalized) (from \(path)) is refused: \(failure)")
        }
    }
}
