import TOMLKit

extension ConfigReader {
    /// `[redis]`: one server (`url`) or a Sentinel-managed primary (`sentinels` +
    /// `master_name`), optionally over TLS, with an optional ACL user.
    func readRedis(_ table: TOMLTable) -> RedisSettings? {
        let path = "redis"
        self.rejectUnknown(
            in: table,
            path: path,
            allowed: [
                "url", "username", "password_file", "password_env", "database", "connect_timeout",
                "command_timeout", "key_prefix", "sentinels", "master_name", "sentinel_username",
                "sentinel_password_file", "sentinel_password_env", "tls", "ca_file", "client_certificate_file",
                "client_key_file", "tls_server_name", "cluster_nodes",
            ]
        )
        let sentinel = self.readSentinel(table, path: path)
        let cluster = self.readCluster(table, path: path)
        let urlText = self.string(table, "url", path: path)
        var endpoint: RedisSettings.Endpoint?
        var urlAsksForTLS = false
        if let urlText {
            if table["sentinels"] != nil {
                self.problem("\(path).url", "set url (one server) or sentinels (Sentinel mode), not both")
            }
            switch ValueParsers.redisURL(urlText) {
            case .success(let parsed):
                endpoint = parsed
                urlAsksForTLS = ValueParsers.isTLSRedisURL(urlText)
            case .failure(let message):
                self.problem("\(path).url", message)
            }
        } else if table["url"] == nil, table["sentinels"] == nil, table["cluster_nodes"] == nil {
            self.problem(
                "\(path).url",
                "is required (e.g. \"redis://127.0.0.1:6379\"), unless sentinels and master_name name a Sentinel-managed primary or cluster_nodes a Redis Cluster"
            )
        }
        if table["cluster_nodes"] != nil {
            if table["url"] != nil {
                self.problem("\(path).cluster_nodes", "set url (one server) or cluster_nodes (Redis Cluster), not both")
            }
            if table["sentinels"] != nil {
                self.problem("\(path).cluster_nodes", "set sentinels or cluster_nodes, not both")
            }
            if let database = table["database"]?.int, database != 0 {
                self.problem("\(path).database", "a Redis Cluster has only database 0")
            }
        }
        let tls = self.readRedisTLS(table, path: path, urlAsksForTLS: urlAsksForTLS, endpoint: endpoint)
        guard let first = endpoint ?? sentinel?.nodes.first ?? cluster?.nodes.first else { return nil }
        var settings = RedisSettings(endpoint: first)
        settings.sentinel = endpoint == nil ? sentinel : nil
        settings.cluster = endpoint == nil && sentinel == nil ? cluster : nil
        settings.tls = tls
        settings.username = self.string(table, "username", path: path)
        settings.password = self.secret(table, fileKey: "password_file", envKey: "password_env", path: path)
        self.integer(table, "database", path: path, range: 0...1023).map { settings.database = $0 }
        self.duration(table, "connect_timeout", path: path).map { settings.connectTimeout = $0 }
        self.duration(table, "command_timeout", path: path).map { settings.commandTimeout = $0 }
        if let prefix = self.string(table, "key_prefix", path: path) {
            if prefix.isEmpty || prefix.utf8.count > 64 || prefix.contains(where: { $0.isWhitespace }) {
                self.problem("\(path).key_prefix", "must be 1-64 characters without spaces")
            } else {
                settings.keyPrefix = prefix
            }
        }
        if settings.cluster != nil, RedisSettings.redisHashTag(of: settings.storeKeyPrefix) == nil {
            // Redis hashes a key whole when its first `{` is followed at once by `}`: the
            // stores' keys would scatter and every multi-key script cross slots.
            self.problem(
                "\(path).key_prefix",
                "on a Redis Cluster the stores' keys must share one slot, but \"\(settings.keyPrefix)\" holds an empty hash tag ({}) that makes Redis hash each key whole: remove the braces or put a tag inside them (e.g. \"app{tenant1}:\")"
            )
        }
        return settings
    }

    /// `sentinels`, `master_name` and the sentinels' own credentials; nil without `sentinels`
    /// (the other keys are then refused).
    private func readSentinel(_ table: TOMLTable, path: String) -> RedisSettings.Sentinel? {
        guard let addresses = self.stringArray(table, "sentinels", path: path) else {
            for key in ["master_name", "sentinel_username", "sentinel_password_file", "sentinel_password_env"]
            where table[key] != nil {
                self.problem("\(path).\(key)", "only applies with sentinels = [\"host:port\", ...]")
            }
            return nil
        }
        var nodes: [RedisSettings.Endpoint] = []
        if addresses.isEmpty || addresses.count > 16 {
            self.problem("\(path).sentinels", "must list 1 to 16 sentinels as \"host:port\"")
        }
        for address in addresses.prefix(16) {
            switch ValueParsers.sentinelAddress(address) {
            case .success(let node):
                if nodes.contains(node) {
                    self.problem("\(path).sentinels", "\"\(address)\" is listed twice")
                } else {
                    nodes.append(node)
                }
            case .failure(let message):
                self.problem("\(path).sentinels", message)
            }
        }
        let name = self.string(table, "master_name", path: path)
        if name == nil, table["master_name"] == nil {
            self.problem("\(path).master_name", "is required with sentinels (the name the sentinels monitor)")
        }
        if let name, name.isEmpty || name.utf8.count > 128 || !name.allSatisfy({ $0.isASCII && !$0.isWhitespace }) {
            self.problem("\(path).master_name", "must be 1-128 ASCII characters without spaces")
            return nil
        }
        guard let name, !nodes.isEmpty else { return nil }
        var sentinel = RedisSettings.Sentinel(nodes: nodes, masterName: name)
        sentinel.username = self.string(table, "sentinel_username", path: path)
        sentinel.password = self.secret(
            table,
            fileKey: "sentinel_password_file",
            envKey: "sentinel_password_env",
            path: path
        )
        return sentinel
    }

    /// `cluster_nodes`: the seed nodes of a Redis Cluster; nil without the key.
    private func readCluster(_ table: TOMLTable, path: String) -> RedisSettings.Cluster? {
        guard let addresses = self.stringArray(table, "cluster_nodes", path: path) else { return nil }
        if addresses.isEmpty || addresses.count > 64 {
            self.problem("\(path).cluster_nodes", "must list 1 to 64 nodes as \"host:port\"")
        }
        var nodes: [RedisSettings.Endpoint] = []
        for address in addresses.prefix(64) {
            switch ValueParsers.clusterNodeAddress(address) {
            case .success(let node):
                if nodes.contains(node) {
                    self.problem("\(path).cluster_nodes", "\"\(address)\" is listed twice")
                } else {
                    nodes.append(node)
                }
            case .failure(let message):
                self.problem("\(path).cluster_nodes", message)
            }
        }
        return nodes.isEmpty ? nil : RedisSettings.Cluster(nodes: nodes)
    }

    /// `tls`, `ca_file`, the client certificate and `tls_server_name`; nil when TLS is off
    /// (the other keys are then refused).
    private func readRedisTLS(
        _ table: TOMLTable,
        path: String,
        urlAsksForTLS: Bool,
        endpoint: RedisSettings.Endpoint?
    ) -> RedisSettings.TLS? {
        let flag = self.bool(table, "tls", path: path)
        if urlAsksForTLS, flag == false {
            self.problem("\(path).tls", "a rediss:// URL always uses TLS; remove tls = false or use redis://")
        }
        let enabled = flag ?? urlAsksForTLS
        let fileKeys = ["ca_file", "client_certificate_file", "client_key_file", "tls_server_name"]
        guard enabled else {
            for key in fileKeys where table[key] != nil {
                self.problem("\(path).\(key)", "only applies with tls = true (or a rediss:// URL)")
            }
            return nil
        }
        if case .unix = endpoint {
            self.problem("\(path).tls", "TLS is for TCP connections; a unix:// socket does not use it")
        }
        var tls = RedisSettings.TLS()
        tls.caFile = self.readableFile(table, "ca_file", path: path)
        tls.clientCertificateFile = self.readableFile(table, "client_certificate_file", path: path)
        tls.clientKeyFile = self.readableFile(table, "client_key_file", path: path)
        if (table["client_certificate_file"] == nil) != (table["client_key_file"] == nil) {
            self.problem("\(path).client_certificate_file", "client_certificate_file and client_key_file go together")
        }
        if let name = self.string(table, "tls_server_name", path: path) {
            if name.isEmpty || name.utf8.count > 253
                || !name.allSatisfy({
                    $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == ":")
                })
            {
                self.problem("\(path).tls_server_name", "must be a host name or an IP address")
            } else {
                tls.serverName = name
            }
        }
        return tls
    }
}
