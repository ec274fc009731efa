/// Turns a request path into the one form routes are matched against and the upstream
/// receives, so no encoding trick can make the gateway and the upstream disagree on
/// which resource is meant (RFC 3986 §6).
///
/// Percent-encoded unreserved characters are decoded (`%64` → `d`), other escapes are
/// kept with upper-case hex, duplicate slashes collapse, dot segments are resolved.
/// Refused outright, because servers disagree on them: an encoded `/`, `\`, NUL or `;`
/// (`%2F`, `%5C`, `%00`, `%3B`), a literal `\`, `;` path parameters, a malformed escape,
/// and `..` above the root. An encoded `;` is refused like a literal one: scopes are
/// decided on the path, and an upstream that decodes before splitting off path
/// parameters would route `/v1/admin%3Bx/users` to a resource the gateway never matched.
/// Pure; any thread.
package enum PathNormalizer {
    package enum Failure: Error, Hashable, Sendable {
        case ambiguous(String)
    }

    package static func normalize(_ path: String) -> Result<String, Failure> {
        let bytes = Array(path.utf8)
        guard bytes.first == UInt8(ascii: "/") else { return .failure(.ambiguous("the path must start with /")) }
        // Decode unreserved escapes and validate the rest.
        var decoded: [UInt8] = []
        decoded.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "%"):
                guard index + 2 < bytes.count, let high = hexValue(bytes[index + 1]),
                    let low = hexValue(bytes[index + 2])
                else {
                    return .failure(.ambiguous("the path has a malformed percent-escape"))
                }
                let value = high << 4 | low
                switch value {
                case UInt8(ascii: "/"), UInt8(ascii: "\\"), 0:
                    return .failure(.ambiguous("the path contains an encoded /, \\ or NUL"))
                case UInt8(ascii: ";"):
                    return .failure(.ambiguous("path parameters (;), encoded or not, are not accepted"))
                default:
                    break
                }
                if isUnreserved(value) {
                    decoded.append(value)
                } else {
                    decoded += [UInt8(ascii: "%"), hexDigit(high), hexDigit(low)]
                }
                index += 3
            case UInt8(ascii: "\\"):
                return .failure(.ambiguous("the path contains a backslash"))
            case UInt8(ascii: ";"):
                return .failure(.ambiguous("path parameters (;) are not accepted"))
            default:
                decoded.append(byte)
                index += 1
            }
        }
        // Split into segments (collapsing empty ones) and resolve dot segments.
        var segments: [ArraySlice<UInt8>] = []
        let trailingSlash = decoded.count > 1 && decoded.last == UInt8(ascii: "/")
        for segment in decoded.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
            if segment.elementsEqual([UInt8(ascii: ".")]) {
                continue
            }
            if segment.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                guard !segments.isEmpty else { return .failure(.ambiguous("the path climbs above the root")) }
                segments.removeLast()
                continue
            }
            segments.append(segment)
        }
        var out: [UInt8] = []
        out.reserveCapacity(decoded.count)
        for segment in segments {
            out.append(UInt8(ascii: "/"))
            out += segment
        }
        if out.isEmpty || (trailingSlash && !segments.isEmpty) {
            out.append(UInt8(ascii: "/"))
        }
        return .success(String(decoding: out, as: UTF8.self))
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - 48
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - 87
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - 55
        default: return nil
        }
    }

    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? 48 + value : 55 + value
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }
}
