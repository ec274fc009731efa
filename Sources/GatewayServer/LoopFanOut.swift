import GatewayAuth
import GatewayStore
import NIOCore

/// Every loop's assembly, for news that concerns them all: a revoked credential, a
/// resubscription after missed revocations, a fetched key set. Each message becomes a task
/// on each loop, so the loops' state is still touched only there. Immutable once the loops
/// exist; any thread.
///
/// It does not own the assemblies (`GatewayServer` does): the callbacks that hold the
/// fan-out are themselves owned by the assemblies (the in-memory stores' revocation
/// listeners, the JWKS refreshers' key installers in `SharedLoopServices`), so a strong
/// reference here made a cycle that kept every loop's state alive after the server was
/// gone. A message that arrives once the server is gone reaches nobody.
struct LoopFanOut: Sendable {
    /// One loop's assembly, not owned. Created and read on that loop.
    struct Member {
        weak var assembly: LoopAssembly?
    }

    let loops: [NIOLoopBound<Member>]
    /// Where the combined futures complete.
    let eventLoop: any EventLoop

    /// Drops a revoked API key from every loop's cache.
    func invalidate(apiKeyHash hash: String) {
        self.tellEveryLoop { $0.authenticator.invalidate(apiKeyHash: hash) }
    }

    /// Drops a revoked opaque access token from every loop's cache.
    func invalidate(opaqueAccessTokenHash hash: String) {
        self.tellEveryLoop { $0.authenticator.invalidate(opaqueAccessTokenHash: hash) }
    }

    /// Refuses a revoked JWT id on every loop at once.
    func revoke(tokenID id: String, expiresAt: Int64) {
        self.tellEveryLoop { $0.jwtAuthenticator?.revoke(tokenID: id, expiresAt: expiresAt) }
    }

    /// Refuses the tokens of an ended session or a revoked user on every loop at once.
    func revoke(_ revocation: SessionRevocation) {
        switch revocation {
        case .tokenID(let id, let expiresAt):
            self.revoke(tokenID: id, expiresAt: expiresAt)
        case .session(let id, let until):
            self.tellEveryLoop { $0.jwtAuthenticator?.revoke(sessionID: id, until: until) }
        case .user(let id, let issuedUpTo, let until):
            self.tellEveryLoop { $0.jwtAuthenticator?.revoke(userID: id, issuedUpTo: issuedUpTo, until: until) }
        }
    }

    /// Revocations may have been missed (the revocation channel was resubscribed): verified
    /// tokens are forgotten; cached credentials too, unless Sentinel switched primaries, where
    /// known keys stay usable within `stale_grace` but are each checked again before they are
    /// trusted (the old primary is gone, a new lookup may not answer at once).
    func forgetAll(primarySwitched: Bool) {
        self.tellEveryLoop { loop in
            if primarySwitched {
                loop.authenticator.revalidateAll()
            } else {
                loop.authenticator.invalidateAll()
            }
            loop.jwtAuthenticator?.removeAll()
        }
    }

    /// Installs an external issuer's key set in every loop's JWT verifier; completes when
    /// all have it.
    func installJWTKeys(issuer: String, keys: JSONWebKeySet) -> EventLoopFuture<Void> {
        self.onEveryLoop { $0.jwtAuthenticator?.installKeys(issuer: issuer, keys: keys) }
    }

    /// Installs an SSO provider's key set in every loop's key ring; completes when all have it.
    func installSSOKeys(issuer: String, keys: JSONWebKeySet) -> EventLoopFuture<Void> {
        self.onEveryLoop { $0.ssoRing.install(issuer: issuer, keys: keys) }
    }

    private func tellEveryLoop(_ body: @escaping @Sendable (LoopAssembly) -> Void) {
        for loop in self.loops {
            loop.eventLoop.execute {
                if let assembly = loop.value.assembly { body(assembly) }
            }
        }
    }

    private func onEveryLoop(_ body: @escaping @Sendable (LoopAssembly) -> Void) -> EventLoopFuture<Void> {
        let futures = self.loops.map { loop in
            loop.eventLoop.submit {
                if let assembly = loop.value.assembly { body(assembly) }
            }
        }
        return EventLoopFuture.andAllSucceed(futures, on: self.eventLoop)
    }
}
