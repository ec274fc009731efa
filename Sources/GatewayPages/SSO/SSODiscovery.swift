import Foundation
import GatewayAuth
package import GatewayConfig

/// The parts of a provider's OpenID Connect discovery document the relying party uses:
/// where to send the browser and where to redeem the code. Parsed strictly: the document's
/// `issuer` must be exactly the configured one (OIDC Discovery §4.3), and both endpoints
/// https (plain http only when the issuer itself is a loopback http URL). A value; any thread.
package struct SSODiscovery: Sendable, Hashable {
    package static let maximumDocumentBytes = 256 * 1024

    /// Why a document (or its fetch) is unusable; logged, never shown.
    package struct Problem: Error, CustomStringConvertible {
        package var description: String
    }

    package var authorizationEndpoint: String
    package var tokenEndpoint: String
    /// The provider puts `iss` in its authorization responses (RFC 9207): a callback
    /// without it is then refused, since every provider answers at one `/sso/callback`.
    package var sendsIssuerInResponses: Bool = false

    package static func parse(_ body: [UInt8], provider: SSOProviderSettings) -> Result<SSODiscovery, Problem> {
        guard let document = try? StrictJSON.parseObject(body) else {
            return .failure(.init(description: "the discovery document is not a JSON object"))
        }
        guard let issuer = document["issuer"]?.string, issuer.utf8.elementsEqual(provider.issuer.utf8) else {
            return .failure(.init(description: "the discovery document names another issuer"))
        }
        let issuerIsHTTPS = provider.issuer.lowercased().hasPrefix("https://")
        func endpoint(_ name: String) -> String? {
            guard let value = document[name]?.string, value.utf8.count <= 2048, !value.contains("#"),
                let url = URL(string: value), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty
            else { return nil }
            if scheme == "https" { return value }
            return scheme == "http" && !issuerIsHTTPS && KeyURLPolicy.isLoopback(host) ? value : nil
        }
        guard let authorization = endpoint("authorization_endpoint") else {
            return .failure(.init(description: "the discovery document has no usable authorization_endpoint"))
        }
        guard let token = endpoint("token_endpoint") else {
            return .failure(.init(description: "the discovery document has no usable token_endpoint"))
        }
        var discovery = SSODiscovery(authorizationEndpoint: authorization, tokenEndpoint: token)
        if case .bool(true)? = document["authorization_response_iss_parameter_supported"] {
            discovery.sendsIssuerInResponses = true
        }
        return .success(discovery)
    }
}
