/// The rate-limit response header fields, in the structured-field form of
/// draft-ietf-httpapi-ratelimit-headers-11 (May 2026; the syntax is unchanged since -08):
///
///     RateLimit-Policy: "default";q=100;w=10
///     RateLimit: "default";r=42;t=3
///     Retry-After: 2                          (on 429 only)
///
/// Both fields are structured-field Lists (RFC 9651) of Items whose value is the policy
/// name as an sf-string: `RateLimit-Policy` carries the quota `q` (the burst) and the window
/// `w` in seconds; `RateLimit` the remaining quota `r` and `t`, the seconds until the quota
/// is restored. Several policies applying to one request are listed in order, one member
/// each. Policy names are validated as `[A-Za-z0-9_.-]`; quoting escapes `"` and `\`
/// anyway, so the output is well-formed whatever it is given.
///
/// Stateless; any thread. Formatting allocates only the returned strings: each value is
/// written byte by byte into its String's storage (a rate-limited request formats two or
/// three of them, and interpolation with a quoting pass cost ~11,000 instructions).
package enum RateLimitHeaders {
    package static let policyName = "RateLimit-Policy"
    package static let rateLimitName = "RateLimit"
    package static let retryAfterName = "Retry-After"

    /// `RateLimit-Policy` for `decisions`, or nil when there are none.
    package static func policy(_ decisions: some Collection<RateLimitDecision>) -> String? {
        self.list(decisions, quota: true)
    }

    /// `RateLimit` for `decisions`, or nil when there are none.
    package static func rateLimit(_ decisions: some Collection<RateLimitDecision>) -> String? {
        self.list(decisions, quota: false)
    }

    /// `Retry-After` in whole seconds when any decision refused (the longest wait: every
    /// refusing policy must have a token again), nil when all allowed.
    package static func retryAfter(_ decisions: some Collection<RateLimitDecision>) -> String? {
        var longest: Int?
        for decision in decisions where !decision.allowed {
            longest = max(longest ?? 0, decision.retryAfterSeconds)
        }
        return longest.map { String($0) }
    }

    /// Every field for `decisions`, name and value, in the order to send them.
    package static func fields(_ decisions: some Collection<RateLimitDecision>) -> [(name: String, value: String)] {
        var fields: [(name: String, value: String)] = []
        fields.reserveCapacity(3)
        if let value = self.policy(decisions) { fields.append((self.policyName, value)) }
        if let value = self.rateLimit(decisions) { fields.append((self.rateLimitName, value)) }
        if let value = self.retryAfter(decisions) { fields.append((self.retryAfterName, value)) }
        return fields
    }

    /// The fields for one decision.
    package static func fields(_ decision: RateLimitDecision) -> [(name: String, value: String)] {
        self.fields(CollectionOfOne(decision))
    }

    /// `"name";q=1;w=2` (`quota`) or `"name";r=1;t=2` per decision, `, ` between them.
    private static func list(_ decisions: some Collection<RateLimitDecision>, quota: Bool) -> String? {
        guard !decisions.isEmpty else { return nil }
        // Each name byte takes at most two bytes quoted, each parameter 3 bytes and at
        // most 20 digits and a sign, the quotes and the separator 4.
        var capacity = 0
        for decision in decisions {
            capacity += 2 * decision.policy.utf8.count + 2 * (3 + 21) + 4
        }
        return String(unsafeUninitializedCapacity: capacity) { buffer in
            var writer = Writer(buffer: buffer)
            var separate = false
            for decision in decisions {
                if separate {
                    writer.append(UInt8(ascii: ","))
                    writer.append(UInt8(ascii: " "))
                }
                separate = true
                writer.appendQuoted(decision.policy)
                writer.append(UInt8(ascii: ";"))
                writer.append(quota ? UInt8(ascii: "q") : UInt8(ascii: "r"))
                writer.append(UInt8(ascii: "="))
                writer.append(quota ? decision.limit : decision.remaining)
                writer.append(UInt8(ascii: ";"))
                writer.append(quota ? UInt8(ascii: "w") : UInt8(ascii: "t"))
                writer.append(UInt8(ascii: "="))
                writer.append(quota ? decision.windowSeconds : decision.resetSeconds)
            }
            return writer.count
        }
    }

    /// An sf-string (RFC 9651 §3.3.3): printable ASCII in quotes, `"` and `\` escaped;
    /// anything else (not producible from a valid policy name) becomes `?`.
    static func quoted(_ text: String) -> String {
        String(unsafeUninitializedCapacity: 2 * text.utf8.count + 2) { buffer in
            var writer = Writer(buffer: buffer)
            writer.appendQuoted(text)
            return writer.count
        }
    }

    /// Appends ASCII into a String's uninitialized storage, whose capacity the caller
    /// sized for everything written. A value on the caller's stack.
    private struct Writer {
        let buffer: UnsafeMutableBufferPointer<UInt8>
        var count = 0

        mutating func append(_ byte: UInt8) {
            self.buffer[self.count] = byte
            self.count += 1
        }

        mutating func append(_ value: Int) {
            if value < 0 { self.append(UInt8(ascii: "-")) }
            var magnitude = value.magnitude
            var divisor: UInt = 1
            while magnitude / divisor >= 10 { divisor *= 10 }
            repeat {
                self.append(UInt8(ascii: "0") + UInt8(magnitude / divisor))
                magnitude %= divisor
                divisor /= 10
            } while divisor > 0
        }

        /// `text` as an sf-string; one `?` per Unicode scalar outside printable ASCII (a
        /// Swift String is valid UTF-8: a scalar is a lead byte and its continuations).
        mutating func appendQuoted(_ text: String) {
            self.append(UInt8(ascii: "\""))
            let contiguous: Void? = text.utf8.withContiguousStorageIfAvailable { bytes in
                for byte in bytes { self.appendEscaped(byte) }
            }
            if contiguous == nil {
                for byte in text.utf8 { self.appendEscaped(byte) }
            }
            self.append(UInt8(ascii: "\""))
        }

        private mutating func appendEscaped(_ byte: UInt8) {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                self.append(UInt8(ascii: "\\"))
                self.append(byte)
            case UInt8(ascii: " ")...UInt8(ascii: "~"):
                self.append(byte)
            case 0x80..<0xC0:
                break  // a continuation byte: its scalar already wrote its `?`
            default:
                self.append(UInt8(ascii: "?"))
            }
        }
    }
}
