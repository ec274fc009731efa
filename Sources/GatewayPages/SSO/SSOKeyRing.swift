package import GatewayAuth
import NIOCore

/// One event loop's view of the providers: the ID-token key sets the process-wide JWKS
/// refresher installs (by issuer), and the discovery documents fetched for sign-ins, kept
/// `discoveryLifetime` seconds. Outlives reloads (the endpoint built on each reload reads
/// the same ring). Touched only on its event loop.
package final class SSOKeyRing {
    package static let discoveryLifetime: Int64 = 300

    private var keySets: [String: JSONWebKeySet] = [:]
    private var discoveries: [String: (document: SSODiscovery, fetchedAt: Int64)] = [:]

    package init() {}

    package func install(issuer: String, keys: JSONWebKeySet) { self.keySets[issuer] = keys }

    package func keys(issuer: String) -> JSONWebKeySet { self.keySets[issuer] ?? .empty }

    package func discovery(issuer: String, now: Int64) -> SSODiscovery? {
        guard let cached = self.discoveries[issuer], now - cached.fetchedAt < Self.discoveryLifetime,
            now >= cached.fetchedAt
        else { return nil }
        return cached.document
    }

    package func remember(issuer: String, discovery: SSODiscovery, now: Int64) {
        self.discoveries[issuer] = (discovery, now)
    }
}
