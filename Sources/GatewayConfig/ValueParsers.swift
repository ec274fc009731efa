import Foundation

/// Strict parsers for the value syntaxes used in `gateway.conf`: durations, sizes,
/// listen addresses and upstream URLs. Pure functions; any thread.
package enum ValueParsers {
    /// Result of a parse: the value, or a message saying what is expected.
    package enum Outcome<Value> {
        case success(Value)
        case failure(String)
    }

    /// `"250ms"`, `"10s"`, `"5m"`, `"1h"`, `"30d"`: digits then one unit; more than 0 (or
    /// 0 when `allowZero`) and at most `maximum` (24 hours unless a key allows longer).
    package static func duration(
        _ text: String,
        allowZero: Bool = false,
        maximum: Duration = .seconds(86_400)
    ) -> Outcome<Duration> {
        let longest = Self.text(of: maximum)
        let expected =
            "must be a duration such as \"500ms\", \"10s\", \"5m\", \"1h\" or \"7d\" (at most \(longest), \(allowZero ? "0 or more" : "more than 0"))"
        let digits = text.prefix(while: { $0.isASCII && $0.isNumber })
        let unit = text.dropFirst(digits.count)
        guard !digits.isEmpty, digits.count <= 9, let amount = Int64(digits), amount > 0 || (allowZero && amount == 0)
        else {
            return .failure(expected)
        }
        let milliseconds: Int64
        switch unit {
        case "ms": milliseconds = amount
        case "s": milliseconds = amount * 1000
        case "m": milliseconds = amount * 60_000
        case "h": milliseconds = amount * 3_600_000
        case "d": milliseconds = amount * 86_400_000
        default: return .failure(expected)
        }
        guard Duration.milliseconds(milliseconds) <= maximum else { return .failure(expected) }
        return .success(.milliseconds(milliseconds))
    }

    /// A duration in the config syntax, in the largest unit that divides it (`"600s"` → `"10m"`).
    package static func text(of duration: Duration) -> String {
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        for (unit, size) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000)]
        where milliseconds % size == 0 && milliseconds != 0 {
            return "\(milliseconds / size)\(unit)"
        }
        return "\(milliseconds)ms"
    }

    /// `"512B"`, `"64KiB"`, `"10MiB"`, `"1GiB"`: digits then a binary unit.
    package static func size(_ text: String) -> Outcome<Int64> {
        let expected = "must be a byte count or a size such as \"64KiB\", \"10MiB\" or \"1GiB\""
        let digits = text.prefix(while: { $0.isASCII && $0.isNumber })
        let unit = text.dropFirst(digits.count)
        guard !digits.isEmpty, digits.count <= 12, let amount = Int64(digits) else { return .failure(expected) }
        let multiplier: Int64
        switch unit {
        case "B", "": multiplier = 1
        case "KiB": multiplier = 1 << 10
        case "MiB": multiplier = 1 << 20
        case "GiB": multiplier = 1 << 30
        default: return .failure(expected)
        }
        let (bytes, overflow) = amount.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { return .failure(expected) }
        return .success(bytes)
    }

    /// `"0.0.0.0:8080"`, `"127.0.0.1:80"`, `"[::1]:8443"`, `"localhost:8080"`.
    package static func listenAddress(_ text: String) -> Outcome<ListenAddress> {
        switch hostAndPort(text, defaultPort: nil) {
        case .success(let (host, port)): return .success(ListenAddress(host: host, port: port))
        case .failure(let message): return .failure("\"\(text)\": \(message)")
        }
    }

    /// `http://host[:port][/]` or `https://host[:port][/]` (ports 80 and 443 by default).
    /// Paths, queries, fragments and credentials are refused.
    package static func upstreamURL(_ text: String) -> Outcome<(scheme: String, host: String, port: Int)> {
        let scheme: String
        if text.hasPrefix("http://") {
            scheme = "http"
        } else if text.hasPrefix("https://") {
            scheme = "https"
        } else {
            return .failure("must start with http:// or https://")
        }
        var rest = Substring(text.dropFirst(scheme.count + 3))
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        if rest.contains("@") {
            return .failure("must not contain credentials")
        }
        if rest.contains("/") || rest.contains("?") || rest.contains("#") {
            return .failure("must be scheme://host[:port] with no path, query or fragment")
        }
        switch hostAndPort(String(rest), defaultPort: scheme == "https" ? 443 : 80) {
        case .success((_, 0)): return .failure("invalid port (expected 1-65535)")
        case .success(let (host, port)): return .success((scheme, host, port))
        case .failure(let message): return .failure(message)
        }
    }

    /// The URL asks for TLS (`rediss://`).
    package static func isTLSRedisURL(_ text: String) -> Bool { text.hasPrefix("rediss://") }

    /// A sentinel's `host:port` (port 26379 by default).
    package static func sentinelAddress(_ text: String) -> Outcome<RedisSettings.Endpoint> {
        switch hostAndPort(text, defaultPort: 26379) {
        case .success((_, 0)): return .failure("\"\(text)\": invalid port (expected 1-65535)")
        case .success(let (host, port)): return .success(.tcp(host: host, port: port))
        case .failure(let message): return .failure("\"\(text)\": \(message)")
        }
    }

    /// A cluster node's `host:port` (port 6379 by default).
    package static func clusterNodeAddress(_ text: String) -> Outcome<RedisSettings.Endpoint> {
        switch hostAndPort(text, defaultPort: 6379) {
        case .success((_, 0)): return .failure("\"\(text)\": invalid port (expected 1-65535)")
        case .success(let (host, port)): return .success(.tcp(host: host, port: port))
        case .failure(let message): return .failure("\"\(text)\": \(message)")
        }
    }

    /// `redis://host[:port]`, `rediss://host[:port]` (TLS: see `isTLSRedisURL`; port 6379 by
    /// default) or `unix:///path/to/socket`. Credentials belong in `password_file`/`password_env`,
    /// never in the URL.
    package static func redisURL(_ text: String) -> Outcome<RedisSettings.Endpoint> {
        if text.hasPrefix("unix://") {
            let path = String(text.dropFirst("unix://".count))
            guard path.hasPrefix("/"), path.utf8.count < 108, !path.contains("?") else {
                return .failure("must be unix:///absolute/path/to/redis.sock")
            }
            return .success(.unix(path: path))
        }
        let scheme = text.hasPrefix("rediss://") ? "rediss://" : "redis://"
        guard text.hasPrefix(scheme) else {
            return .failure("must start with redis://, rediss:// (TLS) or unix://")
        }
        var rest = Substring(text.dropFirst(scheme.count))
        if rest.contains("@") {
            return .failure("must not contain credentials; use password_file or password_env")
        }
        if let slash = rest.firstIndex(of: "/") {
            let tail = rest[rest.index(after: slash)...]
            guard tail.isEmpty else {
                return .failure("select the database with the `database` key, not in the URL")
            }
            rest = rest[..<slash]
        }
        switch hostAndPort(String(rest), defaultPort: 6379) {
        case .success(let (host, port)): return .success(.tcp(host: host, port: port))
        case .failure(let message): return .failure(message)
        }
    }

    /// Why `pattern` is not a valid route path, or nil if it is: literal segments of
    /// unreserved characters, `*` for one segment, `**` as the last segment for any rest.
    package static func routePatternProblem(_ pattern: String) -> String? {
        guard pattern.hasPrefix("/") else { return "must start with /" }
        let segments = pattern.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        for (index, segment) in segments.enumerated() {
            if segment == "**" {
                if index != segments.count - 1 { return "** may only be the last segment" }
                continue
            }
            if segment == "*" { continue }
            if segment.isEmpty, index == segments.count - 1, segments.count == 1 { continue }
            if segment.isEmpty { return "must not contain empty segments (//) or end with /" }
            if segment == "." || segment == ".." { return "must not contain . or .. segments" }
            let allowed = segment.unicodeScalars.allSatisfy { scalar in
                scalar.isASCII
                    && (CharacterSet.alphanumerics.contains(scalar)
                        || "-._~:@!$&'()+,=".unicodeScalars.contains(scalar))
            }
            if !allowed {
                return "segment \"\(segment)\" has characters that need percent-encoding or * in a wrong place"
            }
        }
        return nil
    }

    private static func hostAndPort(_ text: String, defaultPort: Int?) -> Outcome<(String, Int)> {
        let host: Substring
        let portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return .failure("unclosed [ in IPv6 address") }
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            if after.isEmpty {
                portText = nil
            } else if after.hasPrefix(":") {
                portText = after.dropFirst()
            } else {
                return .failure("expected :port after ]")
            }
            guard !host.isEmpty, host.allSatisfy({ $0.isASCII && ($0.isHexDigit || $0 == ":" || $0 == ".") }) else {
                return .failure("invalid IPv6 address")
            }
        } else {
            if let colon = text.lastIndex(of: ":") {
                host = text[..<colon]
                portText = text[text.index(after: colon)...]
            } else {
                host = Substring(text)
                portText = nil
            }
            guard !host.isEmpty, host.utf8.count <= 253,
                host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") })
            else {
                return .failure("invalid host (expected a hostname, an IPv4 address or [IPv6])")
            }
        }
        let port: Int
        if let portText {
            guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
                let parsed = Int(portText), (0...65535).contains(parsed)
            else {
                return .failure("invalid port (expected 0-65535)")
            }
            port = parsed
        } else if let defaultPort {
            port = defaultPort
        } else {
            return .failure("a port is required (host:port)")
        }
        return .success((String(host), port))
    }
}
