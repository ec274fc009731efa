/// The validated, immutable configuration of one gateway process: what `gateway.conf`
/// says, with every default filled in.
///
/// Built once per (re)load by `ConfigurationLoader`; a snapshot is `Sendable` and never
/// mutated afterwards, so any thread may read it. A request keeps the snapshot it started
/// with, which is how SIGHUP swaps configuration without disturbing in-flight requests.
package struct GatewayConfiguration: Sendable, Hashable {
    package var server: ServerSettings
    package var upstream: UpstreamSettings
    package var logging: LoggingSettings
    /// nil: no Redis; credentials live in the process (single node, demo).
    package var redis: RedisSettings?
    package var cache: CacheSettings = CacheSettings()
    package var apiKeys: APIKeySettings = APIKeySettings()
    package var jwt: JWTSettings = JWTSettings()
    /// `[[auth.oauth.introspection]]`: other authorization servers whose opaque tokens are
    /// checked by introspection, asked in file order.
    package var introspection: [IntrospectionSettings] = []
    /// In file order; the first match wins.
    package var routes: [RouteSettings] = []
    /// nil: no admin listener.
    package var admin: AdminSettings?
    /// `[[rate_limits]]`, in file order; names are unique.
    package var rateLimits: [RateLimitPolicy] = []
    /// `[ui]`: the browser pages.
    package var ui: UISettings = UISettings()
    /// `[oauth]`; nil: the gateway is no OAuth authorization server.
    package var oauth: OAuthSettings?
    /// `[sso]`; nil: users sign in only with a password.
    package var sso: SSOSettings?

    /// The policy called `name`, if defined.
    package func rateLimitPolicy(named name: String) -> RateLimitPolicy? {
        self.rateLimits.first { $0.name == name }
    }

    package init(
        server: ServerSettings = ServerSettings(),
        upstream: UpstreamSettings,
        logging: LoggingSettings = LoggingSettings(),
        redis: RedisSettings? = nil,
        routes: [RouteSettings] = []
    ) {
        self.server = server
        self.upstream = upstream
        self.logging = logging
        self.redis = redis
        self.routes = routes
    }
}

/// One `host:port` the gateway listens on.
package struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    package var host: String
    package var port: Int

    package init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    package var description: String {
        self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
    }

    /// Whether only this host can connect: `localhost`, 127.0.0.0/8 or ::1 (also as an
    /// IPv4-mapped address).
    package var isLoopback: Bool {
        if self.host.lowercased() == "localhost" { return true }
        switch IPAddress.parse(self.host) {
        case .v6(high: 0, low: 1)?: return true
        case let address?: return address.unmappedV4.map { $0 >> 24 == 127 } ?? false
        case nil: return false
        }
    }
}

/// `[server]`: listeners, connection limits and client-side timeouts.
package struct ServerSettings: Sendable, Hashable {
    package var listen: [ListenAddress] = [ListenAddress(host: "0.0.0.0", port: 8080)]
    /// Whether the file set `listen`: with sockets passed by the service manager
    /// (`LISTEN_FDS`) an explicit list must match them, a default one is replaced by them.
    package var listenIsExplicit: Bool {
        get { self.listenProvenance.explicit }
        set { self.listenProvenance.explicit = newValue }
    }
    var listenProvenance = Provenance()
    /// Event loops (threads); 0 means one per core.
    package var eventLoops: Int = 0
    package var maxConnections: Int = 10_000
    /// Total bytes of all header names and values in one request head (431 beyond).
    package var maxHeaderBytes: Int = 32 * 1024
    /// Bytes of one request body (413 beyond).
    package var maxBodyBytes: Int64 = 10 * 1024 * 1024
    /// Time a client has to send a complete request head once its first byte arrived.
    package var headerTimeout: Duration = .seconds(10)
    /// Longest pause between two reads of a request body.
    package var bodyTimeout: Duration = .seconds(30)
    /// How long an idle keep-alive connection is kept open.
    package var idleTimeout: Duration = .seconds(60)
    /// How long SIGTERM waits for in-flight requests before closing what is left.
    package var drainTimeout: Duration = .seconds(30)
    /// What happens to a request that matches no `[[routes]]` entry.
    package var unmatchedRoutes: UnmatchedRoutePolicy = .deny
    /// Peers whose `X-Forwarded-For` is believed (e.g. a load balancer in front); empty:
    /// nobody's, the TCP peer is the client address.
    package var trustedProxies: TrustedProxies = TrustedProxies()
    /// `[server.tls]`: when present, every `listen` address speaks TLS (HTTPS).
    package var tls: ServerTLSSettings?

    /// `deny`: 404 without forwarding (default-deny). `authenticate`: forwarded for any
    /// valid credential, with no scope required.
    package enum UnmatchedRoutePolicy: String, Sendable, Hashable, CaseIterable {
        case deny
        case authenticate
    }

    package init() {}
}

/// `[upstream]`: where authorized traffic goes and how the gateway talks to it.
package struct UpstreamSettings: Sendable, Hashable {
    /// `http` or `https`.
    package var scheme: String = "http"
    package var host: String
    package var port: Int
    package var connectTimeout: Duration = .seconds(2)
    /// Time from the end of the forwarded request until the response head arrives, and the
    /// longest pause between two reads of the response body.
    package var responseTimeout: Duration = .seconds(30)
    /// Idle keep-alive connections kept per event loop.
    package var maxIdleConnectionsPerLoop: Int = 256
    /// How long an idle upstream connection is kept before it is closed.
    package var idleTimeout: Duration = .seconds(60)
    /// Send the client's `Host` upstream (true) or the upstream's own authority (false).
    package var preserveHost: Bool = false
    /// Forward `X-HTTP-Method-Override` and the other method/URL override headers. Off by
    /// default: scopes are decided on the request line, and an upstream honouring an
    /// override would run a method or path the gateway never authorized.
    package var forwardMethodOverride: Bool = false
    /// https only: PEM bundle of the CAs the upstream's certificate must chain to; nil
    /// trusts the system store.
    package var caFile: String?
    /// https only: a client certificate (PEM chain) and key to present (mTLS upstreams).
    package var clientCertificateFile: String?
    package var clientKeyFile: String?
    /// https only: the name sent as SNI and checked against the upstream's certificate;
    /// nil uses the URL's host.
    package var tlsServerName: String?

    package init(scheme: String = "http", host: String, port: Int) {
        self.scheme = scheme
        self.host = host
        self.port = port
    }

    /// `host:port` as sent in `Host` when the client's is not preserved.
    package var authority: String {
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        let defaultPort = self.scheme == "https" ? 443 : 80
        return self.port == defaultPort ? host : "\(host):\(self.port)"
    }

    package var isTLS: Bool { self.scheme == "https" }

    /// The name the upstream's certificate must carry.
    package var effectiveTLSServerName: String { self.tlsServerName ?? self.host }

    package var url: String { "\(self.scheme)://\(self.authority)" }
}

/// `[logging]`: level and format of the process log and the access log.
package struct LoggingSettings: Sendable, Hashable {
    package enum Level: String, Sendable, Hashable, CaseIterable {
        case trace, debug, info, notice, warning, error, critical
    }

    package enum Format: String, Sendable, Hashable, CaseIterable {
        case json, text
    }

    package var level: Level = .info
    package var format: Format = .json
    /// One line per request at `info`.
    package var accessLog: Bool = true
    /// Fraction of successful requests logged (errors and refusals are always logged).
    package var accessLogSampleRate: Double = 1.0

    package init() {}
}

/// `[server.tls]`: TLS termination on the listeners. File paths are kept here; the
/// certificates are loaded (and each key checked against its certificate) by the server
/// module at start and on every reload.
package struct ServerTLSSettings: Sendable, Hashable {
    /// One `[[server.tls.certificates]]` entry: another certificate, chosen by SNI.
    package struct SNICertificate: Sendable, Hashable {
        /// Lowercase host names; `*.example.com` matches exactly one label.
        package var serverNames: [String]
        package var certificateFile: String
        package var privateKeyFile: String
        package var privateKeyPassphrase: Secret?

        package init(serverNames: [String], certificateFile: String, privateKeyFile: String) {
            self.serverNames = serverNames
            self.certificateFile = certificateFile
            self.privateKeyFile = privateKeyFile
        }
    }

    package enum MinimumVersion: String, Sendable, Hashable, CaseIterable {
        case v1_2 = "1.2"
        case v1_3 = "1.3"
    }

    package enum ClientAuthentication: String, Sendable, Hashable, CaseIterable {
        case none, optional, required
    }

    /// PEM chain (leaf first) presented by default.
    package var certificateFile: String
    package var privateKeyFile: String
    /// From `private_key_passphrase_file`, for an encrypted key; never rendered.
    package var privateKeyPassphrase: Secret?
    package var certificates: [SNICertificate] = []
    package var minimumVersion: MinimumVersion = .v1_2
    /// Add `Strict-Transport-Security` to every response.
    package var hsts: Bool = true
    package var hstsMaxAgeSeconds: Int = 31_536_000
    package var clientCAFile: String?
    package var clientAuthentication: ClientAuthentication = .none
    /// How long a TLS session can be resumed (tickets and the session cache).
    package var sessionTimeout: Duration = .seconds(300)
    /// From TCP accept to the end of the handshake.
    package var handshakeTimeout: Duration = .seconds(10)

    package init(certificateFile: String, privateKeyFile: String) {
        self.certificateFile = certificateFile
        self.privateKeyFile = privateKeyFile
    }

    /// The `Strict-Transport-Security` value, or nil when HSTS is off.
    package var strictTransportSecurity: String? {
        self.hsts ? "max-age=\(self.hstsMaxAgeSeconds)" : nil
    }
}

/// Where a setting came from (the file or the default). Not part of a configuration's
/// value: two configurations that listen on the same addresses are equal, so a rendered
/// configuration (which always names `listen`) parses back equal. A value; any thread.
struct Provenance: Sendable, Hashable {
    var explicit = false

    static func == (_: Provenance, _: Provenance) -> Bool { true }
    func hash(into _: inout Hasher) {}
}
