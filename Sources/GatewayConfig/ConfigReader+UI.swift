import TOMLKit

extension ConfigReader {
    /// `[ui]`.
    func readUI(_ table: TOMLTable) -> UISettings {
        let path = "ui"
        self.rejectUnknown(
            in: table,
            path: path,
            allowed: ["session_idle_timeout", "session_lifetime", "enabled", "path_prefix"]
        )
        var settings = UISettings()
        self.boundedDuration(table, "session_idle_timeout", path: path, .seconds(60)...(.seconds(86400))).map {
            settings.sessionIdleTimeout = $0
        }
        self.boundedDuration(table, "session_lifetime", path: path, .seconds(300)...(.seconds(30 * 86400))).map {
            settings.sessionLifetime = $0
        }
        if settings.sessionIdleTimeout > settings.sessionLifetime {
            self.problem("\(path).session_idle_timeout", "must not exceed session_lifetime")
        }
        self.bool(table, "enabled", path: path).map { settings.enabled = $0 }
        if let prefix = self.string(table, "path_prefix", path: path) {
            if let problem = UISettings.problem(withPrefix: prefix) {
                self.problem("\(path).path_prefix", problem)
            } else {
                settings.pathPrefix = prefix
            }
        }
        return settings
    }
}
