extension RouteSettings {
    /// The DB Audit API's routes and scopes (from its public authentication docs): reads
    /// need `read:<resource>`, changes need `write:<resource>`. Used by `demo`, and written
    /// out in `gateway.conf.example`.
    package static let dbAuditDefaults: [RouteSettings] = {
        var routes: [RouteSettings] = []
        func add(_ methods: [String], _ path: String, _ scope: String) {
            for method in methods {
                routes.append(RouteSettings(method: method, path: path, scopes: [scope]))
            }
        }
        let writes = ["POST", "PUT", "PATCH", "DELETE"]
        add(["GET"], "/v1/databases/**", "read:databases")
        add(writes, "/v1/databases/**", "write:databases")
        add(["GET"], "/v1/policies/**", "read:policies")
        add(writes, "/v1/policies/**", "write:policies")
        add(["GET"], "/v1/alerts/**", "read:alerts")
        add(writes, "/v1/alerts/**", "write:alerts")
        add(["GET"], "/v1/logs/**", "read:logs")
        add(["GET", "POST"], "/v1/reports/**", "read:reports")
        return routes
    }()
}
