import Foundation
import TOMLKit

extension ConfigReader {
    /// `[auth.oauth]` with its `[[auth.oauth.introspection]]` entries.
    func readOAuthRequestPath(_ table: TOMLTable) -> [IntrospectionSettings] {
        let path = "auth.oauth"
        self.rejectUnknown(in: table, path: path, allowed: ["introspection"])
        var entries: [IntrospectionSettings] = []
        var seen = Set<String>()
        for (entry, entryPath) in self.tableArray(table, "introspection", path: path) {
            self.rejectUnknown(
                in: entry,
                path: entryPath,
                allowed: [
                    "endpoint", "client_id", "client_secret_file", "client_secret_env", "ca_file", "timeout",
                    "cache_max", "negative_ttl",
                ]
            )
            guard let endpoint = self.string(entry, "endpoint", path: entryPath) else {
                if entry["endpoint"] == nil {
                    self.problem(
                        "\(entryPath).endpoint",
                        "is required (the RFC 7662 introspection URL, e.g. \"https://login.example.com/oauth2/introspect\")"
                    )
                }
                continue
            }
            guard Self.isIntrospectionURL(endpoint) else {
                self.problem(
                    "\(entryPath).endpoint",
                    "must be an https:// URL (http:// only to a loopback address) without user info or fragment"
                )
                continue
            }
            guard seen.insert(endpoint).inserted else {
                self.problem("\(entryPath).endpoint", "\(endpoint) is configured twice")
                continue
            }
            guard let clientID = self.string(entry, "client_id", path: entryPath) else {
                if entry["client_id"] == nil {
                    self.problem("\(entryPath).client_id", "is required (the gateway's client id at that server)")
                }
                continue
            }
            guard !clientID.isEmpty, clientID.utf8.count <= 256,
                clientID.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F })
            else {
                self.problem("\(entryPath).client_id", "must be 1-256 characters without control characters")
                continue
            }
            guard
                let secret = self.secret(
                    entry,
                    fileKey: "client_secret_file",
                    envKey: "client_secret_env",
                    path: entryPath
                )
            else {
                if entry["client_secret_file"] == nil, entry["client_secret_env"] == nil {
                    self.problem(
                        "\(entryPath).client_secret_file",
                        "a client secret (client_secret_file or client_secret_env) is required"
                    )
                }
                continue
            }
            var settings = IntrospectionSettings(endpoint: endpoint, clientID: clientID, clientSecret: secret)
            if let caFile = self.string(entry, "ca_file", path: entryPath) {
                if FileManager.default.isReadableFile(atPath: caFile) {
                    settings.caFile = caFile
                } else {
                    self.problem("\(entryPath).ca_file", "\(caFile) cannot be read")
                }
            }
            self.boundedDuration(entry, "timeout", path: entryPath, .milliseconds(10)...(.seconds(60))).map {
                settings.timeout = $0
            }
            self.boundedDuration(entry, "cache_max", path: entryPath, .seconds(1)...(.seconds(86400))).map {
                settings.cacheMax = $0
            }
            self.boundedDuration(entry, "negative_ttl", path: entryPath, .zero...(.seconds(3600))).map {
                settings.negativeTTL = $0
            }
            entries.append(settings)
        }
        return entries
    }

    private static func isIntrospectionURL(_ text: String) -> Bool {
        guard KeyURLPolicy.allows(text), let components = URLComponents(string: text) else { return false }
        return components.user == nil && components.password == nil && components.fragment == nil
    }
}
