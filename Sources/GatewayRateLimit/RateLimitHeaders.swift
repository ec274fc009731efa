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
/// Stateless; any thread. Formatting allocates only the returned strings.
package enum RateLimitHeaders {
    package static let policyName = "RateLimit-Policy"
    package static let rateLimitName = "RateLimit"
    package static let retryAfterName = "Retry-After"

    /// `RateLimit-Policy` for `decisions`, or nil when there are none.
    package static func policy(_ decisions: some Collection<RateLimitDecision>) -> String? {
        self.list(decisions) { "\(quoted($0.policy));q=\($0.limit);w=\($0.windowSeconds)" }
    }

    /// `RateLimit` for `decisions`, or nil when there are none.
    package static func rateLimit(_ decisions: some Collection<RateLimitDecision>) -> String? {
        self.list(decisions) { "\(quoted($0.policy));r=\($0.remaining);t=\($0.resetSeconds)" }
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
        if let value = self.policy(decisions) { fields.append((self.policyName, value)) }
        if let value = self.rateLimit(decisions) { fields.append((self.rateLimitName, value)) }
        if let value = self.retryAfter(decisions) { fields.append((self.retryAfterName, value)) }
        return fields
    }

    /// The fields for one decision.
    package static func fields(_ decision: RateLimitDecision) -> [(name: String, value: String)] {
        self.fields(CollectionOfOne(decision))
    }

    private static func list(
        _ decisions: some Collection<RateLimitDecision>,
        _ member: (RateLimitDecision) -> String
    ) -> String? {
        guard !decisions.isEmpty else { return nil }
        return decisions.map(member).joined(separator: ", ")
    }

    /// An sf-string (RFC 9651 §3.3.3): printable ASCII in quotes, `"` and `\` escaped;
    /// anything else (not producible from a valid policy name) becomes `?`.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"", "\\":
                out.unicodeScalars.append("\\")
                out.unicodeScalars.append(scalar)
            case " "..."~":
                out.unicodeScalars.append(scalar)
            default:
                out.unicodeScalars.append("?")
            }
        }
        out.unicodeScalars.append("\"")
        return out
    }
}
