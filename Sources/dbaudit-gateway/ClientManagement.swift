import GatewayConfig
import GatewayCore
import GatewayCrypto
import GatewayOAuth
import GatewayRedis
import GatewayStore
import NIOCore
import NIOPosix

/// OAuth client administration for the CLI (`dbaudit-gateway clients ...`) against the Redis
/// store a configuration names: registration (the secret is printed once and kept only as
/// its peppered hash), listing (file-declared clients included), removal and secret
/// rotation. Clients declared in `[[oauth.clients]]` are managed in the file, never here.
/// One-thread event loop per command.
final class ClientManagement: Sendable {
    enum Failure: Error, CustomStringConvertible {
        case noRedis
        case noPepper
        case noOAuth
        case invalid(String)
        case declaredInFile(String)
        case unknown(String)
        case storeUnavailable

        var description: String {
            switch self {
            case .noRedis: "clients are kept in Redis: configure [redis]"
            case .noPepper: "[auth.api_keys] pepper_file or pepper_env is required (client secrets are hashed with it)"
            case .noOAuth: "the configuration has no [oauth] section: the gateway is not an authorization server"
            case .invalid(let message): message
            case .declaredInFile(let id):
                "client \(id) is declared in the configuration file ([[oauth.clients]]): change it there"
            case .unknown(let id): "no registered client has the id \(id)"
            case .storeUnavailable: ManagementConnection.unreachable
            }
        }
    }

    private let group: MultiThreadedEventLoopGroup
    private let settings: RedisSettings
    private let pepper: Secret
    private let declared: [OAuthClientSettings]

    init(configuration: GatewayConfiguration) throws(Failure) {
        guard let redis = configuration.redis else { throw .noRedis }
        guard let pepper = configuration.apiKeys.pepper else { throw .noPepper }
        guard let oauth = configuration.oauth else { throw .noOAuth }
        self.settings = redis
        self.pepper = pepper
        self.declared = oauth.clients
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    func shutdown() async {
        try? await self.group.shutdownGracefully()
    }

    /// Registers a client; returns it and, for a confidential client, its secret (shown once).
    func add(
        name: String,
        redirectURIs: [String],
        grantTypes: [String],
        scopes: [String],
        isPublic: Bool,
        tokenFormat: String,
        isResourceServer: Bool = false,
        now: Int64
    ) async throws -> (client: OAuthClient, secret: String?) {
        let grants: Set<OAuthGrantType>
        switch OAuthClientSettings.grantTypes(grantTypes) {
        case .success(let parsed): grants = parsed
        case .failure(let problem): throw Failure.invalid("--grant-types: \(problem.message)")
        }
        guard let format = OAuthTokenFormat(rawValue: tokenFormat) else {
            throw Failure.invalid("--token-format must be jwt or opaque")
        }
        let candidate = OAuthClientSettings(
            id: OAuthClientCredentials.generateID(),
            name: name,
            redirectURIs: redirectURIs,
            grantTypes: grants,
            scopes: scopes,
            isPublic: isPublic,
            tokenFormat: format,
            isResourceServer: isResourceServer
        )
        if isPublic, isResourceServer {
            throw Failure.invalid(
                "--resource-server: a public client cannot authenticate, so it cannot introspect tokens"
            )
        }
        if let problem = candidate.ruleProblems().first {
            throw Failure.invalid("--\(problem.key.replacingOccurrences(of: "_", with: "-")): \(problem.message)")
        }
        if let unknown = scopes.first(where: { !Scopes.all.contains($0) }) {
            throw Failure.invalid(
                "--scopes: unknown scope \(unknown.prefix(40)) (known: \(Scopes.all.joined(separator: " ")))"
            )
        }
        // Random ids do not collide with declared ones in practice; checked all the same,
        // because a declared client must always win its id.
        guard !self.declared.contains(where: { $0.id == candidate.id }) else {
            throw Failure.invalid("generated id clashes; run again")
        }
        let secret = isPublic ? nil : OAuthClientCredentials.generateSecret()
        let client = OAuthClient(candidate, secretHash: secret.map(self.hash), source: .store, createdAt: now)
        try await self.withStore { store in store.createClient(client) }
        return (client, secret)
    }

    /// Every client: those declared in the file first (by id), then the registered ones.
    func list() async throws -> [OAuthClient] {
        let registered = try await self.withStore { store in store.listClients() }
        let declaredIDs = Set(self.declared.map(\.id))
        let declared = self.declared.sorted { $0.id < $1.id }.map {
            OAuthClient($0, secretHash: nil, source: .config, createdAt: 0)
        }
        return declared + registered.filter { !declaredIDs.contains($0.id) }
    }

    func remove(id: String) async throws {
        guard !self.declared.contains(where: { $0.id == id }) else { throw Failure.declaredInFile(id) }
        guard OAuthClientID.isValid(id), try await self.withStore({ store in store.removeClient(id: id) }) else {
            throw Failure.unknown(id)
        }
    }

    /// A new secret for a registered confidential client; the old one stops working at once.
    func rotateSecret(id: String) async throws -> (client: OAuthClient, secret: String) {
        guard !self.declared.contains(where: { $0.id == id }) else { throw Failure.declaredInFile(id) }
        guard OAuthClientID.isValid(id), var client = try await self.withStore({ store in store.client(id: id) }) else {
            throw Failure.unknown(id)
        }
        guard !client.isPublic else { throw Failure.invalid("client \(id) is public: it has no secret") }
        let secret = OAuthClientCredentials.generateSecret()
        client.secretHash = self.hash(secret)
        let updated = client
        guard try await self.withStore({ store in store.replaceClient(updated) }) else { throw Failure.unknown(id) }
        return (updated, secret)
    }

    private func hash(_ secret: String) -> String {
        OAuthClientRegistry.secretHash(secret, hmac: HMACSHA256(key: Array(self.pepper.value.utf8)))
    }

    private func withStore<T: Sendable>(
        _ body: @escaping @Sendable (any OAuthStore) -> EventLoopFuture<T>
    ) async throws -> T {
        let prefix = self.settings.storeKeyPrefix
        do {
            return try await ManagementConnection.run(self.settings, on: self.group) { client, _ in
                body(RedisOAuthStore(client: client, keyPrefix: prefix))
            }
        } catch CredentialStoreError.conflict {
            throw Failure.invalid("a client with this id already exists")
        } catch CredentialStoreError.unavailable {
            throw Failure.storeUnavailable
        }
    }
}
