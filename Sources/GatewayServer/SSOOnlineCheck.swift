import GatewayAuth
package import GatewayConfig
import GatewayPages
import NIOCore
import NIOPosix

/// `check-config --online`: fetches each `[[sso.providers]]` discovery document as the
/// running gateway would (same fetcher, TLS and bounds) and checks it names the provider's
/// issuer and usable endpoints. Runs on a private event loop group, from the command's
/// thread (never from an event loop).
package enum SSOOnlineCheck {
    package struct Outcome: Sendable {
        package var provider: String
        /// A line for the report; names no secret.
        package var message: String
        package var ok: Bool
    }

    package static func run(_ configuration: GatewayConfiguration) async -> [Outcome] {
        let providers = configuration.sso?.providers ?? []
        guard !providers.isEmpty else { return [] }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let fetch = HTTPFetchers.posix(group: group)
        var outcomes: [Outcome] = []
        for provider in providers {
            outcomes.append(await Self.check(provider, fetch: fetch))
        }
        try? await group.shutdownGracefully()
        return outcomes
    }

    private static func check(_ provider: SSOProviderSettings, fetch: HTTPFetcher) async -> Outcome {
        do {
            let response = try await fetch(
                provider.discoveryURL,
                provider.timeout.timeAmount,
                SSODiscovery.maximumDocumentBytes,
                provider.caFile
            ).get()
            guard response.status == 200 else {
                return Outcome(
                    provider: provider.name,
                    message: "\(provider.discoveryURL) answered HTTP \(response.status)",
                    ok: false
                )
            }
            switch SSODiscovery.parse(response.body, provider: provider) {
            case .success(let document):
                return Outcome(
                    provider: provider.name,
                    message:
                        "discovery OK (authorization_endpoint \(document.authorizationEndpoint), token_endpoint \(document.tokenEndpoint))",
                    ok: true
                )
            case .failure(let problem):
                return Outcome(
                    provider: provider.name,
                    message: "\(provider.discoveryURL): \(problem.description)",
                    ok: false
                )
            }
        } catch {
            return Outcome(
                provider: provider.name,
                message: "\(provider.discoveryURL) cannot be fetched: \(error)",
                ok: false
            )
        }
    }
}
