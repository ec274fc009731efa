package import GatewayProxy
import NIOCore

extension GatewayServer {
    /// Explains `request` on the first event loop with that loop's own stores, caches and
    /// rate limiters, taking no token and forwarding nothing. In the `explain` command the
    /// server was never started, so the loop is as fresh as a just-started gateway's (a
    /// remote issuer's keys are fetched the first time a token needs them); on the admin
    /// listener it is the running gateway's loop.
    package func explain(_ request: ExplainRequest) async throws -> ExplainReport {
        let context = self.loopContexts[0]
        return try await context.eventLoop.flatSubmit { Explainer.explain(request, on: context.value) }.get()
    }
}
