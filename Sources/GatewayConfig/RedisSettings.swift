/// `[redis]`: where the credential store and shared rate-limit buckets live.
package struct RedisSettings: Sendable, Hashable {
    /// How to reach the server.
    package enum Endpoint: Sendable, Hashable, CustomStringConvertible {
        case tcp(host: String, port: Int)
        case unix(path: String)

        package var description: String {
            switch self {
            case .tcp(let host, let port):
                return host.contains(":") ? "redis://[\(host)]:\(port)" : "redis://\(host):\(port)"
            case .unix(let path):
                return "unix://\(path)"
            }
        }
    }

    /// TLS to Redis (and to the sentinels): `tls = true` or a `rediss://` URL.
    package struct TLS: Sendable, Hashable {
        /// PEM bundle of the CAs the server certificate must chain to; nil: the system store.
        package var caFile: String?
        package var clientCertificateFile: String?
        package var clientKeyFile: String?
        /// Checked against the certificate (and sent as SNI); nil: the host being connected to.
        package var serverName: String?

        package init() {}
    }

    /// Sentinel mode: the primary is found by asking these sentinels for `masterName`.
    package struct Sentinel: Sendable, Hashable {
        /// `host:port` of each sentinel, asked in this order.
        package var nodes: [Endpoint]
        package var masterName: String
        /// The sentinels' own ACL user and password (`sentinel_username`, `sentinel_password_file`/`_env`).
        package var username: String?
        package var password: Secret?

        package init(nodes: [Endpoint], masterName: String) {
            self.nodes = nodes
            self.masterName = masterName
        }
    }

    /// Cluster mode: the slot map is learnt from these seed nodes (`cluster_nodes`).
    package struct Cluster: Sendable, Hashable {
        /// `host:port` of each seed node, asked in this order for the slot map.
        package var nodes: [Endpoint]

        package init(nodes: [Endpoint]) {
            self.nodes = nodes
        }
    }

    /// The one Redis server (without `sentinel` or `cluster`); in sentinel mode the first
    /// sentinel, never connected to as a data node; in cluster mode the first seed node.
    package var endpoint: Endpoint
    package var tls: TLS?
    package var sentinel: Sentinel?
    package var cluster: Cluster?
    /// ACL user name (Redis 6+), or nil for the default user.
    package var username: String?
    /// From `password_file` or `password_env`; never rendered.
    package var password: Secret?
    package var database: Int = 0
    package var connectTimeout: Duration = .seconds(1)
    package var commandTimeout: Duration = .milliseconds(500)
    /// Prefix of every key and channel the gateway uses.
    package var keyPrefix: String = "dbgw:"

    package init(endpoint: Endpoint) {
        self.endpoint = endpoint
    }

    /// The prefix of the stores' keys and channels. On a cluster every key a store's command
    /// or script touches must share one slot, so the stores' keys get the hash tag `{gw}`
    /// after `key_prefix` (`dbgw:{gw}:apikeys`), unless `key_prefix` already carries a tag of
    /// its own; rate-limit buckets (one key per script) and the API key records
    /// (`spreadKeyPrefix`) keep `key_prefix` alone and spread over the slots. Without a
    /// cluster it is `key_prefix` itself.
    package var storeKeyPrefix: String {
        guard self.cluster != nil, !Self.hasHashTag(self.keyPrefix) else { return self.keyPrefix }
        return self.keyPrefix + "{gw}:"
    }

    /// On a cluster whose `key_prefix` has no hash tag of its own, `key_prefix` itself: the
    /// prefix of the API key records and last-use values, which take their own hash tag
    /// (`dbgw:apikey:{<hash>}`) and so spread over every slot, as the request path reads
    /// them. Nil otherwise (every store key under `storeKeyPrefix`, as on a single Redis).
    package var spreadKeyPrefix: String? {
        guard self.cluster != nil, !Self.hasHashTag(self.keyPrefix) else { return nil }
        return self.keyPrefix
    }

    /// The part of `key` Redis Cluster hashes, read as Redis reads it: from the first `{` to
    /// the first `}` after it, when at least one character lies between; nil when Redis hashes
    /// the whole key. Every key that starts with a prefix whose tag is not nil shares the
    /// prefix's slot, whatever follows.
    package static func redisHashTag(of key: String) -> Substring? {
        guard let open = key.firstIndex(of: "{") else { return nil }
        let start = key.index(after: open)
        guard let close = key[start...].firstIndex(of: "}"), close > start else { return nil }
        return key[start..<close]
    }

    /// `text` holds `{...}` with at least one character between the braces: the part of a
    /// key Redis Cluster hashes instead of the whole key.
    package static func hasHashTag(_ text: String) -> Bool {
        guard let open = text.firstIndex(of: "{") else { return false }
        guard let close = text[text.index(after: open)...].firstIndex(of: "}") else { return false }
        return close > text.index(after: open)
    }
}

/// A secret read from a file or the environment. Its description never shows the value,
/// so it cannot leak through string interpolation into logs or `check-config` output.
package struct Secret: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    package let value: String

    package init(_ value: String) {
        self.value = value
    }

    package var description: String { "<redacted>" }
    package var debugDescription: String { "<redacted>" }
}

/// `[admin]`: the operators' listener with `/healthz`, `/readyz` and `/metrics`.
package struct AdminSettings: Sendable, Hashable {
    /// Loopback by default: these endpoints are for the host's monitoring, not the world.
    package var listen: ListenAddress = ListenAddress(host: "127.0.0.1", port: 9901)
    /// A listen address other than loopback is accepted only with this and a token.
    package var allowRemote: Bool = false
    /// When set, every admin request needs `Authorization: Bearer <token>`.
    package var token: Secret?

    package init() {}
}

/// `[cache]`: the per-event-loop credential cache in front of the store.
package struct CacheSettings: Sendable, Hashable {
    /// How long a valid credential is trusted without asking the store again.
    package var positiveTTL: Duration = .seconds(30)
    /// How long an unknown credential is remembered as unknown.
    package var negativeTTL: Duration = .seconds(5)
    /// During a store outage, how long past its TTL a cached credential keeps working.
    package var staleGrace: Duration = .seconds(300)
    /// Valid credentials per event loop; the oldest are dropped beyond it.
    package var maxEntries: Int = 100_000
    /// Unknown (or revoked, expired) credentials per event loop, in a space of their own so
    /// they never evict a valid one; the oldest are dropped beyond it.
    package var negativeMaxEntries: Int = 10_000

    package init() {}
}

/// `[auth.api_keys]`.
package struct APIKeySettings: Sendable, Hashable {
    /// The HMAC-SHA256 key API keys are hashed with (`pepper_file` / `pepper_env`).
    package var pepper: Secret?
    /// Forward the client's `Authorization` header upstream for API-key requests.
    package var forwardAuthorization: Bool = false
    /// Most unrevoked keys one owner may create through `/v1/api-keys` (the CLI is not
    /// capped: it is the operator).
    package var maxKeysPerOwner: Int = 100
    /// The `[[rate_limits]]` policy for `/v1/api-keys` calls, per caller; nil for the
    /// built-in `managementDefaultPolicy`.
    package var managementRateLimit: String?
    /// Failed API key authentications one client address (an IPv6 /64) may cause per
    /// `failureWindow` before its requests with keys not cached as valid get 429 without a
    /// store lookup; 0 turns the limit off.
    package var failuresPerAddress: Int = 100
    package var failureWindow: Duration = .seconds(60)

    /// The policy counting failed authentications per address (`auth-failures-address`);
    /// nil when turned off.
    package var failurePolicy: RateLimitPolicy? {
        guard self.failuresPerAddress > 0 else { return nil }
        return RateLimitPolicy.attempts(
            "auth-failures-address",
            self.failuresPerAddress,
            windowSeconds: Int(self.failureWindow.components.seconds)
        )
    }

    /// Without `management_rate_limit`: 30 calls at once, then one per second per caller.
    package static let managementDefaultPolicy = RateLimitPolicy(
        name: "api-keys-management",
        rate: 60,
        per: .minute,
        burst: 30
    )

    package init() {}
}

/// One `[[routes]]` entry: which requests it covers and what they need.
package struct RouteSettings: Sendable, Hashable {
    /// An HTTP method, or nil for any.
    package var method: String?
    /// `/v1/databases`, `/v1/databases/*` (one segment), `/v1/reports/**` (any rest).
    package var path: String
    /// Every scope listed is required (`admin` grants all).
    package var scopes: [String]
    /// No credential needed (e.g. an upstream health page).
    package var isPublic: Bool = false
    /// Name of the `[[rate_limits]]` policy for requests on this route, or nil for none.
    package var rateLimit: String?

    package init(method: String?, path: String, scopes: [String], isPublic: Bool = false, rateLimit: String? = nil) {
        self.method = method
        self.path = path
        self.scopes = scopes
        self.isPublic = isPublic
        self.rateLimit = rateLimit
    }
}
