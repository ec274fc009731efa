/// The paths of the settings pages under `[ui] path_prefix`, and the one rule for where a
/// browser may be sent after signing in: a path of these pages only (never an absolute
/// URL, another origin, `//host`, a dot segment or a query). A value; any thread.
package struct SettingsPaths: Sendable, Hashable {
    package let prefix: String

    package init(prefix: String) { self.prefix = prefix }

    package var login: String { prefix + "/login" }
    package var logout: String { prefix + "/logout" }
    package var keys: String { prefix + "/api-keys" }
    package var newKey: String { prefix + "/api-keys/new" }
    package var created: String { prefix + "/api-keys/created" }
    package var revoke: String { prefix + "/api-keys/revoke" }
    package var stylesheet: String { prefix + "/static/settings.css" }
    package var script: String { prefix + "/static/copy.js" }

    package func handles(_ path: String) -> Bool {
        path == prefix || (path.hasPrefix(prefix) && path.utf8.dropFirst(prefix.utf8.count).first == UInt8(ascii: "/"))
    }

    /// `candidate` if the browser may be sent there after sign-in, else the key list.
    package func afterLogin(_ candidate: String?) -> String {
        guard let candidate, Self.isPlainPath(candidate), candidate == prefix || candidate.hasPrefix(prefix + "/"),
            candidate != login, candidate != logout
        else { return keys }
        return candidate
    }

    /// `/` then segments of letters, digits, `-`, `_`; no empty or dot segment; at most 128 bytes.
    static func isPlainPath(_ path: String) -> Bool {
        guard path.utf8.count <= 128, path.hasPrefix("/") else { return false }
        return path.dropFirst().split(separator: "/", omittingEmptySubsequences: false).allSatisfy { segment in
            !segment.isEmpty
                && segment.utf8.allSatisfy { byte in
                    (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                        || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                        || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-")
                        || byte == UInt8(ascii: "_")
                }
        }
    }

    /// The sign-in page that returns to `next`.
    package func loginLocation(next: String) -> String {
        login + "?next=" + FormFields.encode(afterLogin(next))
    }
}
