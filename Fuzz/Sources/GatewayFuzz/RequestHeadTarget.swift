import GatewayProxy
import NIOHTTP1

/// Request-head validation and path normalisation. The input is read leniently as a
/// request head (`METHOD target VERSION`, then `name: value` lines, CRLF or LF), so the
/// validator sees values llhttp itself would have refused as well: it must stand on its
/// own. Stateless; the fuzzer's thread.
enum RequestHeadTarget {
    static func run(_ input: UnsafeBufferPointer<UInt8>) {
        // Lines split on bytes: in a Swift String, CRLF is one Character.
        var lines = input.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { line in
            String(decoding: line.last == UInt8(ascii: "\r") ? line.dropLast() : line, as: UTF8.self)
        }
        guard !lines.isEmpty else { return }
        let requestLine = lines.removeFirst().split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        let method = HTTPMethod(rawValue: requestLine.count > 0 ? String(requestLine[0]) : "GET")
        let uri = requestLine.count > 1 ? String(requestLine[1]) : "/"
        let version: HTTPVersion = requestLine.count > 2 && requestLine[2] == "HTTP/1.0" ? .http1_0 : .http1_1
        var headers = HTTPHeaders()
        for line in lines {
            if line.isEmpty { break }
            let parts = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            // NIO's HTTPHeaders traps on a non-ASCII name; llhttp never produces one.
            guard parts[0].utf8.allSatisfy({ $0 < 0x80 }) else { continue }
            headers.add(name: String(parts[0]), value: parts.count == 2 ? String(parts[1]).trimmed() : "")
        }
        let head = HTTPRequestHead(version: version, method: method, uri: uri, headers: headers)
        let maxBody: Int64 = 1 << 20
        switch RequestValidation.validate(head, maxBodyBytes: maxBody) {
        case .success(let framing):
            invariant(uri.utf8.first == UInt8(ascii: "/"), "accepted a request target not in origin form")
            invariant(
                !uri.utf8.contains(where: { $0 <= 0x20 || $0 >= 0x7F }),
                "accepted a target with CTL/SP/non-ASCII"
            )
            invariant(method != .CONNECT && method != .TRACE, "accepted \(method)")
            let hosts = headers.filter { $0.name.lowercased() == "host" }.count
            invariant(hosts <= 1, "accepted \(hosts) Host headers")
            if version == .http1_1 { invariant(hosts == 1, "accepted an HTTP/1.1 request without Host") }
            let hasTE = headers.contains { $0.name.lowercased() == "transfer-encoding" }
            let hasCL = headers.contains { $0.name.lowercased() == "content-length" }
            invariant(!(hasTE && hasCL), "accepted both Content-Length and Transfer-Encoding")
            for (name, value) in headers {
                invariant(!name.isEmpty && !name.utf8.contains(where: { $0 <= 0x20 || $0 == 0x3A }), "bad name")
                invariant(!value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }), "CR/LF/NUL in a value")
            }
            switch framing {
            case .none: invariant(!hasTE, "a Transfer-Encoding request framed without a body")
            case .contentLength(let length):
                invariant(length > 0 && length <= maxBody, "Content-Length \(length) out of range")
                invariant(hasCL && !hasTE, "a length without Content-Length")
            case .chunked: invariant(hasTE && version == .http1_1, "chunked without TE or on HTTP/1.0")
            }
        case .failure:
            break
        }
        let path = String(uri.prefix { $0 != "?" })
        checkNormalization(path)
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

extension StringProtocol {
    fileprivate func trimmed() -> String {
        String(self.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
