/// An IPv4 or IPv6 address as numbers, parsed strictly from its text form.
///
/// Immutable value; any thread. IPv6 is held as two 64-bit halves so masking a prefix is
/// two integer operations, with no allocation per lookup.
package enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    case v4(UInt32)
    /// High and low 64 bits, network order.
    case v6(high: UInt64, low: UInt64)

    /// Parses `192.0.2.1` or `2001:db8::1` (also `::ffff:192.0.2.1`). Strict: four decimal
    /// octets without leading zeros (`010.0.0.1` is ambiguous: octal to some parsers), hex
    /// groups of at most four digits, at most one `::`, no zone (`%eth0`), no brackets.
    package static func parse(_ text: some StringProtocol) -> IPAddress? {
        let utf8 = Array(text.utf8)
        if utf8.contains(UInt8(ascii: ":")) {
            return parseV6(utf8[...]).map { .v6(high: $0.high, low: $0.low) }
        }
        return parseV4(utf8[...]).map { .v4($0) }
    }

    /// The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), which is how a
    /// dual-stack socket reports an IPv4 peer.
    package var unmappedV4: UInt32? {
        switch self {
        case .v4(let value): return value
        case .v6(let high, let low):
            guard high == 0, low >> 32 == 0xFFFF else { return nil }
            return UInt32(truncatingIfNeeded: low)
        }
    }

    package var description: String {
        switch self {
        case .v4(let value):
            return "\(value >> 24).\((value >> 16) & 0xFF).\((value >> 8) & 0xFF).\(value & 0xFF)"
        case .v6(let high, let low):
            // Full form, lower-case hex, zeros compressed in the first longest run (RFC 5952).
            var groups: [UInt16] = []
            for shift in stride(from: 48, through: 0, by: -16) {
                groups.append(UInt16(truncatingIfNeeded: high >> UInt64(shift)))
            }
            for shift in stride(from: 48, through: 0, by: -16) {
                groups.append(UInt16(truncatingIfNeeded: low >> UInt64(shift)))
            }
            var bestStart = -1
            var bestLength = 1
            var index = 0
            while index < 8 {
                if groups[index] == 0 {
                    var end = index
                    while end < 8, groups[end] == 0 { end += 1 }
                    if end - index > bestLength {
                        bestStart = index
                        bestLength = end - index
                    }
                    index = end
                } else {
                    index += 1
                }
            }
            func hex(_ range: Range<Int>) -> String {
                groups[range].map { String($0, radix: 16) }.joined(separator: ":")
            }
            if bestStart < 0 { return hex(0..<8) }
            return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
        }
    }

    private static func parseV4(_ bytes: ArraySlice<UInt8>) -> UInt32? {
        let parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
            else { return nil }
            if part.count > 1, part.first == UInt8(ascii: "0") { return nil }
            let octet = part.reduce(UInt32(0)) { $0 * 10 + UInt32($1 - UInt8(ascii: "0")) }
            guard octet <= 255 else { return nil }
            value = value << 8 | octet
        }
        return value
    }

    private static func parseV6(_ bytes: ArraySlice<UInt8>) -> (high: UInt64, low: UInt64)? {
        guard bytes.count >= 2, bytes.count <= 45 else { return nil }
        // Split around the one "::", if any.
        var head = bytes
        var tail: ArraySlice<UInt8>?
        var index = bytes.startIndex
        while index < bytes.endIndex - 1 {
            if bytes[index] == UInt8(ascii: ":"), bytes[index + 1] == UInt8(ascii: ":") {
                guard tail == nil else { return nil }
                head = bytes[bytes.startIndex..<index]
                tail = bytes[(index + 2)...]
                index += 2
                continue
            }
            index += 1
        }
        guard let headGroups = groups(head, mayEndWithV4: tail == nil) else { return nil }
        var all: [UInt16]
        if let tail {
            // ":::" leaves a tail starting with ":", which `groups` rejects.
            guard let tailGroups = groups(tail, mayEndWithV4: true) else { return nil }
            let missing = 8 - headGroups.count - tailGroups.count
            guard missing >= 1 else { return nil }
            all = headGroups + Array(repeating: 0, count: missing) + tailGroups
        } else {
            all = headGroups
        }
        guard all.count == 8 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for group in all[0..<4] { high = high << 16 | UInt64(group) }
        for group in all[4..<8] { low = low << 16 | UInt64(group) }
        return (high, low)
    }

    /// Colon-separated hex groups (empty input: none); the last may be a dotted IPv4 address.
    private static func groups(_ bytes: ArraySlice<UInt8>, mayEndWithV4: Bool) -> [UInt16]? {
        if bytes.isEmpty { return [] }
        let parts = bytes.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
        var result: [UInt16] = []
        for (position, part) in parts.enumerated() {
            if position == parts.count - 1, part.contains(UInt8(ascii: ".")) {
                guard mayEndWithV4, let v4 = parseV4(part) else { return nil }
                result.append(UInt16(v4 >> 16))
                result.append(UInt16(v4 & 0xFFFF))
                continue
            }
            guard (1...4).contains(part.count) else { return nil }
            var value: UInt16 = 0
            for byte in part {
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: return nil
                }
                value = value << 4 | UInt16(digit)
            }
            result.append(value)
        }
        return result.count <= 8 ? result : nil
    }
}

/// `[server] trusted_proxies`: the peers whose `X-Forwarded-For` the gateway believes, as
/// a list of networks (a single address is a /32 or /128 network).
///
/// Immutable value, part of the configuration snapshot; any thread. `contains` parses the
/// peer address text and compares integers: no allocation beyond the parse.
package struct TrustedProxies: Sendable, Hashable, CustomStringConvertible {
    /// One address or CIDR block. Immutable value; any thread.
    package struct Network: Sendable, Hashable, CustomStringConvertible {
        package let address: IPAddress
        package let prefixLength: Int

        /// Parses `10.0.0.0/8`, `2001:db8::/32`, `127.0.0.1` or `::1`. Host bits set under
        /// the prefix (`10.0.0.1/8`) are refused: that is usually a typo for another block.
        package static func parse(_ text: String) -> ValueParsers.Outcome<Network> {
            let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard let address = IPAddress.parse(parts[0]) else {
                return .failure("\"\(text)\": not an IPv4 or IPv6 address or CIDR block (e.g. \"10.0.0.0/8\", \"::1\")")
            }
            let maximum: Int
            switch address {
            case .v4: maximum = 32
            case .v6: maximum = 128
            }
            var prefix = maximum
            if parts.count == 2 {
                let digits = parts[1]
                guard (1...3).contains(digits.count), digits.allSatisfy({ $0.isASCII && $0.isNumber }),
                    digits.count == 1 || digits.first != "0", let parsed = Int(digits), parsed <= maximum
                else {
                    return .failure("\"\(text)\": the prefix length must be 0-\(maximum)")
                }
                prefix = parsed
            }
            let network = Network(address: address, prefixLength: prefix)
            if let masked = network.masked(address), masked != address {
                let fixed = Network(address: masked, prefixLength: prefix)
                return .failure("\"\(text)\": has bits set after the /\(prefix) prefix (did you mean \"\(fixed)\"?)")
            }
            return .success(network)
        }

        private init(address: IPAddress, prefixLength: Int) {
            self.address = address
            self.prefixLength = prefixLength
        }

        /// `address` with every bit after this network's prefix cleared, or nil for the other family.
        private func masked(_ address: IPAddress) -> IPAddress? {
            switch address {
            case .v4(let value):
                guard case .v4 = self.address else { return nil }
                let mask: UInt32 = self.prefixLength == 0 ? 0 : ~UInt32(0) << UInt32(32 - self.prefixLength)
                return .v4(value & mask)
            case .v6(let high, let low):
                guard case .v6 = self.address else { return nil }
                let highBits = min(self.prefixLength, 64)
                let lowBits = max(self.prefixLength - 64, 0)
                let highMask: UInt64 = highBits == 0 ? 0 : ~UInt64(0) << UInt64(64 - highBits)
                let lowMask: UInt64 = lowBits == 0 ? 0 : ~UInt64(0) << UInt64(64 - lowBits)
                return .v6(high: high & highMask, low: low & lowMask)
            }
        }

        /// Whether `address` lies in this network. An IPv4-mapped IPv6 address also matches
        /// IPv4 networks, as dual-stack sockets report IPv4 peers that way.
        package func contains(_ address: IPAddress) -> Bool {
            if self.masked(address) == self.address { return true }
            if case .v4 = self.address, case .v6 = address, let v4 = address.unmappedV4 {
                return self.masked(.v4(v4)) == self.address
            }
            return false
        }

        package var description: String {
            switch self.address {
            case .v4 where self.prefixLength == 32, .v6 where self.prefixLength == 128:
                return self.address.description
            case .v4, .v6:
                return "\(self.address)/\(self.prefixLength)"
            }
        }
    }

    package private(set) var networks: [Network]

    /// Nobody is trusted: `X-Forwarded-For` is ignored and the peer address is the client.
    package init() {
        self.networks = []
    }

    package init(networks: [Network]) {
        self.networks = networks
    }

    /// Parses every entry; the first bad one (or a duplicate) is the failure.
    package static func parse(_ entries: [String]) -> ValueParsers.Outcome<TrustedProxies> {
        var networks: [Network] = []
        for entry in entries {
            switch Network.parse(entry) {
            case .success(let network):
                if networks.contains(network) { return .failure("\"\(entry)\" is listed twice") }
                networks.append(network)
            case .failure(let message):
                return .failure(message)
            }
        }
        return .success(TrustedProxies(networks: networks))
    }

    package var isEmpty: Bool { self.networks.isEmpty }

    package func contains(_ address: IPAddress) -> Bool {
        self.networks.contains { $0.contains(address) }
    }

    /// Whether the peer address `text` (as a socket reports it; an IPv6 zone such as
    /// `%eth0` is ignored) is trusted. Unparseable text is never trusted.
    package func contains(_ text: String) -> Bool {
        guard !self.networks.isEmpty else { return false }
        var text = Substring(text)
        if let percent = text.firstIndex(of: "%") { text = text[..<percent] }
        guard let address = IPAddress.parse(text) else { return false }
        return self.contains(address)
    }

    package var description: String {
        "[" + self.networks.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
    }
}
