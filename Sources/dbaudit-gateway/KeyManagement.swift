import GatewayAuth
import GatewayConfig
import GatewayCrypto
import GatewayRedis
import GatewayStore
import NIOCore
import NIOPosix

/// API-key administration for the CLI (`dbaudit-gateway keys ...`): the same
/// `APIKeyService` as the HTTP API, against the Redis store a configuration names.
/// Runs its own one-thread event loop for the duration of one command.
final class KeyManagement: Sendable {
    enum Failure: Error, CustomStringConvertible {
        case noRedis
        case noPepper
        case request(String)
        case storeUnavailable

        var description: String {
            switch self {
            case .noRedis:
                return
                    "keys are kept in Redis: configure [redis] (the in-memory store lives only inside a running gateway)"
            case .noPepper:
                return "[auth.api_keys] pepper_file or pepper_env is required"
            case .request(let message):
                return message
            case .storeUnavailable:
                return ManagementConnection.unreachable
            }
        }
    }

    private let group: MultiThreadedEventLoopGroup
    private let settings: RedisSettings
    private let pepper: Secret
    private let policies: Set<String>

    init(configuration: GatewayConfiguration) throws(Failure) {
        guard let redis = configuration.redis else { throw .noRedis }
        guard let pepper = configuration.apiKeys.pepper else { throw .noPepper }
        self.settings = redis
        self.pepper = pepper
        self.policies = Set(configuration.rateLimits.map(\.name))
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    func shutdown() async {
        try? await self.group.shutdownGracefully()
    }

    private func withService<T: Sendable>(
        _ body: @escaping @Sendable (APIKeyService, any EventLoop) -> EventLoopFuture<T>
    ) async throws -> T {
        let settings = self.settings
        let pepper = self.pepper
        return try await ManagementConnection.run(self.settings, on: self.group) { client, loop in
            let store = RedisCredentialStore(client: client, settings: settings)
            let hmac = HMACSHA256(key: Array(pepper.value.utf8))
            let service = APIKeyService(store: store) { key in Hex.encode(hmac.authenticationCode(for: key.utf8)) }
            return body(service, loop)
        }
    }

    func create(
        name: String,
        scopes: [String],
        expiresIn: Int64?,
        test: Bool,
        owner: String,
        now: Int64,
        rateLimit: String? = nil
    ) async throws -> APIKeyService.Created {
        if let rateLimit, !self.policies.contains(rateLimit) {
            throw Failure.request(
                "--rate-limit names no [[rate_limits]] policy of this configuration (\(self.policies.sorted().joined(separator: ", ")))"
            )
        }
        do {
            return try await self.withService { service, _ in
                service.create(
                    name: name,
                    scopes: scopes,
                    expiresInSeconds: expiresIn,
                    test: test,
                    owner: owner,
                    grantor: nil,
                    now: now,
                    rateLimit: rateLimit
                )
            }
        } catch let error as APIKeyService.RequestError {
            switch error {
            case .invalid(let message), .scopeNotHeld(let message): throw Failure.request(message)
            }
        } catch {
            throw Failure.storeUnavailable
        }
    }

    func list() async throws -> [APIKeyRecord] {
        do {
            return try await self.withService { service, _ in service.list() }
        } catch {
            throw Failure.storeUnavailable
        }
    }

    func revoke(id: String) async throws -> APIKeyRecord? {
        do {
            return try await self.withService { service, _ in service.revoke(id: id) }
        } catch {
            throw Failure.storeUnavailable
        }
    }
}
