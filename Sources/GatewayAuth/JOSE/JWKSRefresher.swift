import Foundation
package import GatewayConfig
package import GatewayCore
package import Logging
package import NIOCore

/// A response of an outbound HTTP GET (JWKS, OIDC discovery).
package struct HTTPFetchResponse: Sendable {
    package var status: Int
    package var cacheControl: String?
    package var body: [UInt8]

    package init(status: Int, cacheControl: String?, body: [UInt8]) {
        self.status = status
        self.cacheControl = cacheControl
        self.body = body
    }
}

/// Performs one outbound GET with a timeout and a body limit; https URLs are verified
/// against `caFile` (nil: the system trust store) with host-name checking. The future
/// completes on any loop. Implemented by the server over NIOPosix and GatewayTLS.
package typealias HTTPFetcher =
    @Sendable (_ url: String, _ timeout: TimeAmount, _ maximumBytes: Int, _ caFile: String?) -> EventLoopFuture<
        HTTPFetchResponse
    >

/// Keeps every external issuer's JWKS current for the whole process: background refresh
/// at the provider's `Cache-Control: max-age` clamped into the configured bounds, a refetch
/// when a token names an unknown `kid` (at most one in flight and one per
/// `unknown_kid_refetch_interval`), stale keys kept while the provider is down, weak keys
/// dropped with a log line. New key sets are installed on every event loop through
/// `install`, so requests read them without a lock.
///
/// All mutable state is touched only on `eventLoop` (the methods hop there), which is
/// what makes the `@unchecked Sendable` sound.
package final class JWKSRefresher: @unchecked Sendable {
    /// No refetch now (the rate cap, or no such issuer). `providerUnreachable`: the last
    /// fetch of that issuer failed, so an unknown `kid` cannot be judged yet.
    package struct RefetchRefused: Error {
        package var providerUnreachable: Bool
        package init(providerUnreachable: Bool = false) { self.providerUnreachable = providerUnreachable }
    }
    package struct FetchFailed: Error, CustomStringConvertible {
        package var description: String
    }

    private final class IssuerState {
        let settings: IssuerSettings
        var keys: JSONWebKeySet = .empty
        var jwksURL: String?
        var inFlight: EventLoopFuture<Void>?
        var lastFetchStarted: NIODeadline?
        var scheduled: Scheduled<Void>?
        var lastProblems: [String] = []
        var fetches = 0
        /// The last fetch failed (the provider could not be reached or answered nonsense).
        var lastFetchFailed = false

        init(settings: IssuerSettings) {
            self.settings = settings
            if case .jwksURL(let url) = settings.keySource { self.jwksURL = url }
        }
    }

    package let eventLoop: any EventLoop
    private let fetcher: HTTPFetcher
    private let install: @Sendable (String, JSONWebKeySet) -> EventLoopFuture<Void>
    private let logger: Logger
    /// The unknown-kid rate cap is measured on its monotonic view; the periodic refreshes
    /// are timers on `eventLoop`.
    private let clock: GatewayClock
    private var issuers: [String: IssuerState] = [:]
    private var stopped = false

    /// - Parameter install: puts a key set on every event loop; completes when all have it.
    package init(
        eventLoop: any EventLoop,
        issuers: [IssuerSettings],
        fetcher: @escaping HTTPFetcher,
        logger: Logger,
        clock: GatewayClock,
        install: @escaping @Sendable (String, JSONWebKeySet) -> EventLoopFuture<Void>
    ) {
        self.clock = clock
        self.eventLoop = eventLoop
        self.fetcher = fetcher
        self.logger = logger
        self.install = install
        for settings in issuers {
            switch settings.keySource {
            case .jwksURL, .discovery: self.issuers[settings.issuer] = IssuerState(settings: settings)
            case .file: break
            }
        }
    }

    /// Starts the first fetch of every remote issuer.
    package func start() {
        self.eventLoop.execute {
            for state in self.issuers.values { _ = self.fetch(state) }
        }
    }

    package func stop() {
        self.eventLoop.execute {
            self.stopped = true
            for state in self.issuers.values { state.scheduled?.cancel() }
        }
    }

    /// How many fetches of `issuer`'s JWKS have started (tests, metrics).
    package func fetchCount(issuer: String) -> EventLoopFuture<Int> {
        self.eventLoop.submit { self.issuers[issuer]?.fetches ?? 0 }
    }

    /// For `UnknownKeyRefetch`: joins the fetch in flight, starts one if the rate cap
    /// allows, else fails with `RefetchRefused`. Completes on `loop`.
    package func refetch(issuer: String, from loop: any EventLoop) -> EventLoopFuture<Void> {
        self.eventLoop.flatSubmit { () -> EventLoopFuture<Void> in
            guard let state = self.issuers[issuer], !self.stopped else {
                return self.eventLoop.makeFailedFuture(RefetchRefused())
            }
            if let inFlight = state.inFlight { return inFlight }
            if let last = state.lastFetchStarted,
                self.clock.now() - last < state.settings.unknownKeyRefetchInterval.timeAmount
            {
                return self.eventLoop.makeFailedFuture(RefetchRefused(providerUnreachable: state.lastFetchFailed))
            }
            return self.fetch(state)
        }.hop(to: loop)
    }

    private func fetch(_ state: IssuerState) -> EventLoopFuture<Void> {
        self.eventLoop.preconditionInEventLoop()
        if let inFlight = state.inFlight { return inFlight }
        state.scheduled?.cancel()
        state.lastFetchStarted = self.clock.now()
        state.fetches += 1
        let settings = state.settings
        let timeout = settings.fetchTimeout.timeAmount
        let urlFuture: EventLoopFuture<String>
        if let url = state.jwksURL {
            urlFuture = self.eventLoop.makeSucceededFuture(url)
        } else if case .discovery(let discoveryURL) = settings.keySource {
            urlFuture = self.fetcher(discoveryURL, timeout, 256 * 1024, settings.caFile).hop(to: self.eventLoop)
                .flatMapThrowing { response -> String in
                    guard response.status == 200 else {
                        throw FetchFailed(description: "discovery answered \(response.status)")
                    }
                    guard let document = try? StrictJSON.parseObject(response.body),
                        let uri = document["jwks_uri"]?.string,
                        let parsed = URL(string: uri), let scheme = parsed.scheme?.lowercased()
                    else { throw FetchFailed(description: "discovery document has no usable jwks_uri") }
                    // Never a step down: https discovery means https keys; http only where the
                    // discovery URL itself was allowed to be (loopback).
                    let discoveryIsHTTPS = discoveryURL.lowercased().hasPrefix("https://")
                    guard
                        scheme == "https"
                            || (scheme == "http" && !discoveryIsHTTPS && KeyURLPolicy.isLoopback(parsed.host ?? ""))
                    else {
                        throw FetchFailed(description: "discovery document's jwks_uri is not https")
                    }
                    // OIDC Discovery §4.3: the document's issuer must be exactly ours.
                    guard let issuer = document["issuer"]?.string, issuer.utf8.elementsEqual(settings.issuer.utf8)
                    else {
                        throw FetchFailed(
                            description: "discovery document does not name issuer \(settings.issuer.prefix(100))"
                        )
                    }
                    return uri
                }
        } else {
            return self.eventLoop.makeSucceededVoidFuture()
        }
        let fetched: EventLoopFuture<HTTPFetchResponse>.Isolated = urlFuture.assumeIsolated().flatMap {
            (url: String) -> EventLoopFuture<HTTPFetchResponse> in
            state.jwksURL = url
            return self.fetcher(url, timeout, JSONWebKeySet.maxDocumentBytes, settings.caFile).hop(to: self.eventLoop)
        }
        let future = fetched.flatMapThrowing { (response: HTTPFetchResponse) -> (JSONWebKeySet, TimeAmount) in
            guard response.status == 200 else {
                throw FetchFailed(description: "JWKS answered HTTP \(response.status)")
            }
            let set: JSONWebKeySet
            do {
                set = try JSONWebKeySet.parse(response.body, allowSymmetric: false)
            } catch {
                throw FetchFailed(description: "\(error)")
            }
            if set.keys.isEmpty { throw FetchFailed(description: "JWKS has no usable key") }
            return (set, Self.refreshInterval(cacheControl: response.cacheControl, settings: settings))
        }.flatMap { fetched -> EventLoopFuture<Void> in
            let (set, interval) = fetched
            state.keys = set
            state.lastFetchFailed = false
            if set.problems != state.lastProblems {
                for problem in set.problems {
                    self.logger.warning(
                        "JWKS key ignored",
                        metadata: ["issuer": "\(settings.issuer)", "reason": "\(problem)"]
                    )
                }
                state.lastProblems = set.problems
            }
            self.schedule(state, after: interval)
            // Stopped meanwhile (a reload replaced this refresher): its keys must not land
            // on the new configuration's verifiers.
            guard !self.stopped else { return self.eventLoop.makeSucceededVoidFuture() }
            return self.install(settings.issuer, set).hop(to: self.eventLoop)
        }.flatMapErrorThrowing { error in
            // Keep the keys we have; try again at the short end of the refresh bounds.
            if case .discovery = settings.keySource { state.jwksURL = nil }
            state.lastFetchFailed = true
            self.logger.error(
                "JWKS refresh failed; keeping the previous keys",
                metadata: [
                    "issuer": "\(settings.issuer)", "error": "\(error)", "keys_kept": "\(state.keys.keys.count)",
                ]
            )
            self.schedule(state, after: settings.minRefreshInterval.timeAmount)
            throw error
        }
        state.inFlight = future.nonisolated()
        future.whenComplete { _ in state.inFlight = nil }  // isolated: runs on this loop
        return future.nonisolated()
    }

    private func schedule(_ state: IssuerState, after interval: TimeAmount) {
        guard !stopped else { return }
        state.scheduled?.cancel()
        let bound = NIOLoopBound(state, eventLoop: self.eventLoop)
        state.scheduled = self.eventLoop.scheduleTask(in: interval) { _ = self.fetch(bound.value) }
    }

    /// `max-age` (or `s-maxage`) clamped into the issuer's bounds; `no-cache`/`no-store` →
    /// the lower bound; no header or no max-age → the upper bound.
    static func refreshInterval(cacheControl: String?, settings: IssuerSettings) -> TimeAmount {
        let lower = settings.minRefreshInterval.timeAmount
        let upper = settings.maxRefreshInterval.timeAmount
        guard let cacheControl else { return upper }
        var maxAge: Int64?
        for directive in cacheControl.lowercased().split(separator: ",") {
            let trimmed = directive.trimmingCharacters(in: .whitespaces)
            if trimmed == "no-cache" || trimmed == "no-store" { return lower }
            for name in ["max-age=", "s-maxage="] where trimmed.hasPrefix(name) {
                if let value = Int64(
                    trimmed.dropFirst(name.count).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                ) {
                    maxAge = max(maxAge ?? 0, value)
                }
            }
        }
        guard let maxAge else { return upper }
        let requested = TimeAmount.seconds(min(maxAge, 365 * 86400))
        return min(max(requested, lower), upper)
    }
}
