import TOMLKit

extension ConfigReader {
    /// `[ui]`.
    func readUI(_ table: TOMLTable) -> UISettings {
        let path = "ui"
        self.rejectUnknown(in: table, path: path, allowed: ["session_idle_timeout", "session_lifetime"])
        var settings = UISettings()
        self.boundedDuration(table, "session_idle_timeout", path: path, .seconds(60)...(.seconds(86400))).map { settings.sessionIdleTimeout = $0 }
        self.boundedDuration(table, "session_lifetime", path: path, .seconds(300)...(.seconds(30 * 86400))).map { settings.sessionLifetime = $0 }
        if settings.sessionIdleTimeout > settings.sessionLifetime {
            self.problem("\(path).session_idle_timeout", "must not exceed session_lifetime")
        }
        return settings
    }
}
