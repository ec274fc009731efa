/// `[ui]`: the browser pages the gateway serves itself (the OAuth sign-in and consent
/// pages, and the Settings > API Keys pages): whether the settings pages are on, where they
/// live, and how long a browser stays signed in. Immutable snapshot; any thread.
package struct UISettings: Sendable, Hashable {
    /// A browser session unused this long is over.
    package var sessionIdleTimeout: Duration = .seconds(30 * 60)
    /// A browser session ends this long after sign-in, however active.
    package var sessionLifetime: Duration = .seconds(12 * 3600)
    /// `enabled`: nil (not set) means on whenever the gateway is an issuer.
    package var enabled: Bool?
    /// `path_prefix` of the settings pages: `/` plus lower-case segments, no trailing slash.
    package var pathPrefix: String = "/settings"

    package init() {}

    /// Whether the settings pages are served: they sign users in, so only an issuer
    /// (`[auth.jwt] issuer`) can serve them; `enabled = false` turns them off.
    package func settingsPagesOn(issuer: String?) -> Bool {
        issuer != nil && (self.enabled ?? true)
    }

    /// Prefixes the settings pages may not take: paths the gateway answers itself.
    package static let reservedPrefixes = ["/oauth", "/v1", "/.well-known", "/health", "/metrics"]

    /// Why `prefix` cannot be `path_prefix`, or nil: `/` then 1–8 segments of `a-z`, `0-9`,
    /// `-`, `_`, at most 64 bytes, no trailing slash, not a reserved path or under one.
    package static func problem(withPrefix prefix: String) -> String? {
        guard prefix.utf8.count >= 2, prefix.utf8.count <= 64, prefix.hasPrefix("/"), !prefix.hasSuffix("/") else {
            return "must be a path of 2 to 64 characters starting with / and not ending with /"
        }
        let segments = prefix.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        guard segments.count <= 8,
            segments.allSatisfy({ segment in
                !segment.isEmpty
                    && segment.utf8.allSatisfy { byte in
                        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                            || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
                    }
            })
        else {
            return "segments may hold only a-z, 0-9, - and _ (no empty segment)"
        }
        for reserved in reservedPrefixes where prefix == reserved || prefix.hasPrefix(reserved + "/") {
            return "\(reserved) is answered by the gateway itself"
        }
        return nil
    }
}
