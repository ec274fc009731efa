extension GatewayConfiguration {
    /// The effective configuration as TOML, every default spelled out, for
    /// `check-config`. Secrets are never rendered: keys holding one print `"<redacted>"`.
    package func renderedTOML() -> String {
        func quote(_ s: String) -> String {
            var out = ""
            out.unicodeScalars.append("\"")
            for scalar in s.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                default:
                    if scalar.value < 0x20 || scalar.value == 0x7F {
                        out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                            + String(scalar.value, radix: 16)
                    } else {
                        out.unicodeScalars.append(scalar)
                    }
                }
            }
            out.unicodeScalars.append("\"")
            return out
        }
        func duration(_ d: Duration) -> String {
            let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
            if ms % 3_600_000 == 0 { return quote("\(ms / 3_600_000)h") }
            if ms % 60_000 == 0 { return quote("\(ms / 60_000)m") }
            if ms % 1000 == 0 { return quote("\(ms / 1000)s") }
            return quote("\(ms)ms")
        }
        var lines: [String] = []
        lines.append("[server]")
        lines.append("listen = [\(self.server.listen.map { quote($0.description) }.joined(separator: ", "))]")
        lines.append("event_loops = \(self.server.eventLoops)")
        lines.append("max_connections = \(self.server.maxConnections)")
        lines.append("max_header_bytes = \(self.server.maxHeaderBytes)")
        lines.append("max_body_bytes = \(self.server.maxBodyBytes)")
        lines.append("header_timeout = \(duration(self.server.headerTimeout))")
        lines.append("body_timeout = \(duration(self.server.bodyTimeout))")
        lines.append("idle_timeout = \(duration(self.server.idleTimeout))")
        lines.append("drain_timeout = \(duration(self.server.drainTimeout))")
        lines.append("")
        lines.append("[upstream]")
        lines.append("url = \(quote(self.upstream.url))")
        lines.append("connect_timeout = \(duration(self.upstream.connectTimeout))")
        lines.append("response_timeout = \(duration(self.upstream.responseTimeout))")
        lines.append("max_idle_connections_per_loop = \(self.upstream.maxIdleConnectionsPerLoop)")
        lines.append("idle_timeout = \(duration(self.upstream.idleTimeout))")
        lines.append("preserve_host = \(self.upstream.preserveHost)")
        lines.append("")
        lines.append("[logging]")
        lines.append("level = \(quote(self.logging.level.rawValue))")
        lines.append("format = \(quote(self.logging.format.rawValue))")
        lines.append("access_log = \(self.logging.accessLog)")
        return lines.joined(separator: "\n") + "\n"
    }
}
