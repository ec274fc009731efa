package import GatewayConfig
import GatewayCrypto

/// Everything about JWTs that is built once per `[auth.jwt]` configuration and shared by
/// every event loop: our issuer (signing keys loaded), the policy of every trusted issuer,
/// the keys known without fetching (ours and file-based issuers'), and a decoy password
/// hash for timing-safe logins. Immutable; any thread. Rebuilt on reload only when
/// `[auth.jwt]` changed.
package final class IdentityRuntime: Sendable {
    package let settings: JWTSettings
    package let issuer: TokenIssuer?
    package let policies: [IssuerPolicy]
    package let initialKeySets: [String: JSONWebKeySet]
    /// Issuers whose keys come over HTTP (the JWKS refresher's work).
    package let remoteIssuers: [IssuerSettings]
    package let decoyHash: String

    private init(
        settings: JWTSettings,
        issuer: TokenIssuer?,
        policies: [IssuerPolicy],
        initialKeySets: [String: JSONWebKeySet],
        remoteIssuers: [IssuerSettings],
        decoyHash: String
    ) {
        self.settings = settings
        self.issuer = issuer
        self.policies = policies
        self.initialKeySets = initialKeySets
        self.remoteIssuers = remoteIssuers
        self.decoyHash = decoyHash
    }

    /// Loads keys and files; nil when `[auth.jwt]` configures neither an issuer of ours nor
    /// a trusted one. Throws `CryptoKeyError` naming the bad key or file (never its
    /// contents). `problems` receives the keys of JWKS files that were skipped.
    package static func build(_ settings: JWTSettings, problems: (String) -> Void = { _ in }) throws -> IdentityRuntime?
    {
        guard settings.issuer != nil || !settings.issuers.isEmpty else { return nil }
        let leeway = Int64(settings.leeway.components.seconds)
        let maxLifetime = Int64(settings.maxTokenLifetime.components.seconds)
        let issuer = try TokenIssuer.build(settings)
        var policies: [IssuerPolicy] = []
        var keySets: [String: JSONWebKeySet] = [:]
        if let issuer {
            policies.append(issuer.policy(leewaySeconds: leeway, maxLifetimeSeconds: maxLifetime))
            keySets[issuer.issuer] = issuer.verificationKeys
        }
        var remote: [IssuerSettings] = []
        for entry in settings.issuers {
            var policy = IssuerPolicy(
                issuer: entry.issuer,
                audiences: entry.audiences,
                requiredType: entry.requiredType,
                leewaySeconds: leeway,
                maxLifetimeSeconds: maxLifetime
            )
            policy.requiresSubject = entry.requireSubject
            if !entry.algorithms.isEmpty {
                policy.allowedAlgorithms = Set(entry.algorithms.compactMap(SignatureAlgorithm.init(rawValue:)))
            }
            policies.append(policy)
            switch entry.keySource {
            case .file(let path, let contents):
                let set: JSONWebKeySet
                do {
                    set = try JSONWebKeySet.parse(Array(contents.value.utf8), allowSymmetric: true)
                } catch {
                    throw CryptoKeyError("jwks_file \(path) of issuer \(entry.issuer): \(error.description)")
                }
                for problem in set.problems { problems("jwks_file \(path): \(problem)") }
                guard !set.keys.isEmpty else {
                    throw CryptoKeyError("jwks_file \(path) of issuer \(entry.issuer) has no usable key")
                }
                keySets[entry.issuer] = set
            case .jwksURL, .discovery:
                remote.append(entry)
            }
        }
        return IdentityRuntime(
            settings: settings,
            issuer: issuer,
            policies: policies,
            initialKeySets: keySets,
            remoteIssuers: remote,
            decoyHash: PasswordHasher.decoy(cost: settings.passwordHashCost)
        )
    }

    /// A verifier for one event loop, starting from the keys known without fetching.
    package func makeVerifier() -> JWTVerifier {
        JWTVerifier(policies: policies, keySets: initialKeySets)
    }
}
