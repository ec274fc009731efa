package import GatewayAuth
package import GatewayConfig
package import GatewayCore
package import Logging
package import NIOCore
import ServiceLifecycle

/// Runs the process's JWKS refresher for one set of remote issuers (`[auth.jwt]`'s trusted
/// issuers, or the `[[sso.providers]]`) as a service of the `ServiceGroup`: it refreshes
/// while the group runs and stops on graceful shutdown.
///
/// Each `update` replaces the refresher with one for the new issuers (a reload that changes
/// them): the old one stops, and what it fetches afterwards is not installed. The current
/// refresher lives on `eventLoop` (a loop-bound box, no lock); `update`, `refetch` and
/// `fetchCount` hop there. Any thread may call them.
package final class JWKSRefresherService: Service, Sendable {
    /// Where a refresher's key sets go, and for which issuers.
    package struct Settings: Sendable {
        package var issuers: [IssuerSettings]
        package var logger: Logger
        /// Puts a key set on every event loop; completes when all have it.
        package var install: @Sendable (String, JSONWebKeySet) -> EventLoopFuture<Void>

        package init(
            issuers: [IssuerSettings],
            logger: Logger,
            install: @escaping @Sendable (String, JSONWebKeySet) -> EventLoopFuture<Void>
        ) {
            self.issuers = issuers
            self.logger = logger
            self.install = install
        }
    }

    private struct State {
        var current: JWKSRefresher?
        /// Between `run` starting and the service's shutdown: a new refresher starts at once.
        var running = false
        var finished = false
    }

    package let eventLoop: any EventLoop
    private let fetcher: HTTPFetcher
    private let clock: GatewayClock
    private let state: NIOLoopBoundBox<State>

    package init(eventLoop: any EventLoop, fetcher: @escaping HTTPFetcher, clock: GatewayClock) {
        self.eventLoop = eventLoop
        self.fetcher = fetcher
        self.clock = clock
        self.state = NIOLoopBoundBox.makeBoxSendingValue(State(), eventLoop: eventLoop)
    }

    /// Replaces the refresher with one for `settings` (nil, or no remote issuer: none).
    package func update(_ settings: Settings?) async {
        let fetcher = self.fetcher
        let clock = self.clock
        let eventLoop = self.eventLoop
        let state = self.state
        try? await eventLoop.submit {
            state.value.current?.stop()
            guard let settings, !settings.issuers.isEmpty, !state.value.finished else {
                state.value.current = nil
                return
            }
            let next = JWKSRefresher(
                eventLoop: eventLoop,
                issuers: settings.issuers,
                fetcher: fetcher,
                logger: settings.logger,
                clock: clock,
                install: settings.install
            )
            state.value.current = next
            if state.value.running { next.start() }
        }.get()
    }

    package func run() async throws {
        let state = self.state
        try await self.eventLoop.submit {
            state.value.running = true
            state.value.current?.start()
        }.get()
        // Returns on graceful shutdown; throws when the group is cancelled. Either way: stop.
        try? await gracefulShutdown()
        try? await self.eventLoop.submit {
            state.value.running = false
            state.value.finished = true
            state.value.current?.stop()
        }.get()
    }

    /// For `UnknownKeyRefetch`: asks the current refresher (fails with `RefetchRefused`
    /// when there is none). Completes on `loop`.
    package func refetch(issuer: String, from loop: any EventLoop) -> EventLoopFuture<Void> {
        let state = self.state
        let eventLoop = self.eventLoop
        return eventLoop.flatSubmit {
            state.value.current?.refetch(issuer: issuer, from: eventLoop)
                ?? eventLoop.makeFailedFuture(JWKSRefresher.RefetchRefused())
        }.hop(to: loop)
    }

    /// How many JWKS fetches of `issuer` the current refresher started (tests).
    package func fetchCount(issuer: String) async throws -> Int {
        let state = self.state
        return try await self.eventLoop.flatSubmit {
            state.value.current?.fetchCount(issuer: issuer) ?? self.eventLoop.makeSucceededFuture(0)
        }.get()
    }
}
