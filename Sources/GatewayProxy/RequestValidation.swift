package import GatewayCore
package import NIOHTTP1

/// How the body of a validated request is framed on the wire.
package enum RequestBodyFraming: Sendable, Hashable {
    case none
    case contentLength(Int64)
    case chunked
}

/// Checks a parsed request head against the rules the HTTP parser leaves to us
/// (RFC 9110/9112 and our own limits), before anything is forwarded.
///
/// The parser (llhttp, strict mode) already refuses CL+TE, differing duplicate
/// `Content-Length`, signed or non-decimal lengths, bad chunk sizes and bare LF. This adds
/// what smuggling and cache-poisoning attacks use beyond those: control characters in
/// values, missing or duplicate `Host`, absolute or odd request targets, transfer codings
/// other than a single `chunked`, and the body size limit. Pure; any thread.
package enum RequestValidation {
    package static func validate(
        _ head: HTTPRequestHead,
        maxBodyBytes: Int64
    ) -> Result<RequestBodyFraming, GatewayError> {
        guard head.version.major == 1, head.version.minor <= 1 else {
            return .failure(
                GatewayError(
                    status: 505,
                    code: "http_version_not_supported",
                    description: "Only HTTP/1.0 and HTTP/1.1 are supported."
                )
            )
        }
        switch head.method {
        case .CONNECT, .TRACE:
            return .failure(.methodNotAllowed)
        default:
            break
        }
        guard isOriginForm(head.uri) else {
            return .failure(.badRequest("The request target must be an absolute path such as /v1/databases."))
        }

        var hostCount = 0
        var contentLengths: [Substring] = []
        var transferEncodings: [String] = []
        for (name, value) in head.headers {
            if !isToken(name) {
                return .failure(.badRequest("A header name contains characters that are not allowed."))
            }
            if !isFieldValue(value) {
                return .failure(.badRequest("A header value contains control characters or line folding."))
            }
            if HeaderName.equals(name, "host") {
                hostCount += 1
                if !isValidHost(value) {
                    return .failure(.badRequest("The Host header is not a valid host[:port]."))
                }
            } else if HeaderName.equals(name, "content-length") {
                contentLengths.append(contentsOf: value.split(separator: ",", omittingEmptySubsequences: false))
            } else if HeaderName.equals(name, "transfer-encoding") {
                transferEncodings.append(value)
            }
        }
        if hostCount > 1 || (hostCount == 0 && head.version.minor >= 1) {
            return .failure(.badRequest("An HTTP/1.1 request must carry exactly one Host header."))
        }
        if !transferEncodings.isEmpty {
            guard contentLengths.isEmpty else {
                return .failure(.badRequest("A request must not carry both Content-Length and Transfer-Encoding."))
            }
            let codings = transferEncodings.flatMap { $0.split(separator: ",") }.map {
                $0.trimmingASCIIWhitespace().lowercased()
            }
            guard codings == ["chunked"], head.version.minor >= 1 else {
                return .failure(.badRequest("The only supported Transfer-Encoding is a single \"chunked\"."))
            }
            return .success(.chunked)
        }
        guard !contentLengths.isEmpty else { return .success(.none) }
        var length: Int64?
        for candidate in contentLengths {
            let digits = candidate.trimmingASCIIWhitespace()
            guard !digits.isEmpty, digits.utf8.count <= 18, digits.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                let parsed = Int64(digits)
            else {
                return .failure(.badRequest("Content-Length must be a decimal number of bytes."))
            }
            if let length, length != parsed {
                return .failure(.badRequest("The request carries conflicting Content-Length values."))
            }
            length = parsed
        }
        guard let length else { return .success(.none) }
        if length > maxBodyBytes {
            return .failure(.bodyTooLarge(limit: Int(clamping: maxBodyBytes)))
        }
        return .success(length == 0 ? .none : .contentLength(length))
    }

    /// `/path[?query]` made of visible ASCII, no fragment.
    static func isOriginForm(_ uri: String) -> Bool {
        let utf8 = uri.utf8
        guard utf8.first == UInt8(ascii: "/") else { return false }
        for byte in utf8 where byte <= 0x20 || byte >= 0x7F || byte == UInt8(ascii: "#") {
            return false
        }
        return true
    }

    /// RFC 9110 token characters.
    static func isToken(_ name: String) -> Bool {
        guard !name.utf8.isEmpty else { return false }
        for byte in name.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"):
                continue
            case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
                UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
                UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
                continue
            default:
                return false
            }
        }
        return true
    }

    /// RFC 9110 field-value: visible characters, SP, HTAB and obs-text; no CR, LF or NUL.
    static func isFieldValue(_ value: String) -> Bool {
        for byte in value.utf8 where (byte < 0x20 && byte != 0x09) || byte == 0x7F {
            return false
        }
        return true
    }

    /// `host[:port]` where host is a reg-name, IPv4 or `[IPv6]`.
    static func isValidHost(_ value: String) -> Bool {
        let utf8 = Array(value.utf8)
        guard !utf8.isEmpty, utf8.count <= 261 else { return false }
        var index = 0
        if utf8[0] == UInt8(ascii: "[") {
            guard let close = utf8.firstIndex(of: UInt8(ascii: "]")), close > 1 else { return false }
            for byte in utf8[1..<close] {
                let isHex =
                    (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 70) || (byte >= 97 && byte <= 102)
                guard isHex || byte == UInt8(ascii: ":") || byte == UInt8(ascii: ".") else { return false }
            }
            index = close + 1
        } else {
            while index < utf8.count, utf8[index] != UInt8(ascii: ":") {
                let byte = utf8[index]
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                    UInt8(ascii: "~"):
                    index += 1
                default:
                    return false
                }
            }
            guard index > 0 else { return false }
        }
        if index == utf8.count { return true }
        guard utf8[index] == UInt8(ascii: ":") else { return false }
        let port = utf8[(index + 1)...]
        return !port.isEmpty && port.count <= 5 && port.allSatisfy { $0 >= 48 && $0 <= 57 }
    }
}

extension StringProtocol {
    func trimmingASCIIWhitespace() -> Substring {
        var slice = self[...]
        while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice = slice.dropLast() }
        return Substring(slice)
    }
}
