import Foundation
package import GatewayConfig
package import GatewayCore
import GatewayCrypto
package import GatewayStore
package import Logging
package import NIOCore

/// Opaque bearer tokens of other authorization servers on one event loop, checked by RFC
/// 7662 introspection at the `[[auth.oauth.introspection]]` endpoints (in file order, until
/// one says active). Answers are remembered on this loop and, through `shared`, by every
/// instance (keyed by the token's SHA-256), never past the token's `exp` nor the endpoint's
/// `cache_max`; `active: false` for its `negative_ttl`. One introspection per token in
/// flight on this loop. An endpoint that is down, slow or answers garbage makes the request
/// a 503 `auth_unavailable`, never a 401. Touched only on its event loop.
package final class IntrospectionAuthenticator {
    /// One configured endpoint with its `Authorization` header computed once.
    private struct Endpoint {
        var settings: IntrospectionSettings
        var authorization: String
    }

    private let endpoints: [Endpoint]
    /// The longest any answer may be kept under this configuration.
    private let longestCacheSeconds: Int64
    private let post: HTTPPoster
    private let shared: (any IntrospectionCacheStore)?
    private let eventLoop: any EventLoop
    private let maximumEntries: Int
    private let clock: GatewayClock
    private let logger: Logger
    private var cache: [String: IntrospectionResult] = [:]
    /// Insertion order, for eviction when full (may hold keys already gone).
    private var order: CircularBuffer<String> = CircularBuffer(initialCapacity: 64)
    private var inFlight: [String: EventLoopFuture<IntrospectionResult>] = [:]
    /// Endpoints whose last exchange failed: logged once, not again until one succeeds.
    private var failing: Set<String> = []

    /// Exchanges with an endpoint started on this loop (tests, metrics).
    package private(set) var introspections = 0
    package private(set) var cacheHits = 0

    package static let refusal = "The access token is not active."
    /// Introspections one loop runs at once. Every token nobody has seen costs the other
    /// server a request: a flood of made-up tokens is turned away here (503) instead of
    /// being passed on, and sockets stay bounded.
    package static let maximumInFlight = 128

    package init(
        endpoints: [IntrospectionSettings],
        post: @escaping HTTPPoster,
        shared: (any IntrospectionCacheStore)?,
        eventLoop: any EventLoop,
        maximumEntries: Int,
        logger: Logger,
        clock: GatewayClock
    ) {
        self.endpoints = endpoints.map { settings in
            let credentials =
                FormEncoding.encode(settings.clientID) + ":" + FormEncoding.encode(settings.clientSecret.value)
            return Endpoint(settings: settings, authorization: "Basic " + Data(credentials.utf8).base64EncodedString())
        }
        self.longestCacheSeconds =
            endpoints.map { max(Self.wholeSeconds($0.cacheMax), Self.wholeSeconds($0.negativeTTL)) }.max() ?? 0
        self.post = post
        self.shared = shared
        self.eventLoop = eventLoop
        self.maximumEntries = max(1, maximumEntries)
        self.logger = logger
        self.clock = clock
    }

    package var cachedTokens: Int { self.cache.count }

    package func removeAll() {
        self.cache.removeAll()
        self.order.removeAll()
    }

    /// - Parameter trace: records each check (explain); nil on the request path.
    package func check(_ token: String, trace: DecisionTrace? = nil) -> TokenCheck {
        let hash = Digest.sha256.hexHash(token.utf8)
        let now = self.clock.unixSeconds()
        if let cached = self.cache[hash] {
            if now < cached.cachedUntil {
                self.cacheHits += 1
                trace?.info("introspection.cache", "answer remembered on this loop until \(cached.cachedUntil)")
                return self.verdict(cached, now: now, trace: trace)
            }
            self.cache[hash] = nil
        }
        trace?.info(
            "introspection.cache",
            "not cached on this loop: the shared cache, then the endpoints (\(self.endpoints.map(\.settings.endpoint).joined(separator: ", "))) are asked"
        )
        let future = self.lookUp(token: token, hash: hash).assumeIsolated().flatMapThrowing { result -> Principal in
            switch self.verdict(result, now: self.clock.unixSeconds(), trace: trace) {
            case .valid(let principal): return principal
            case .invalid(let error): throw error
            case .pending: preconditionFailure("a verdict is never pending")
            }
        }.nonisolated()
        return .pending(future)
    }

    private func verdict(_ result: IntrospectionResult, now: Int64, trace: DecisionTrace? = nil) -> TokenCheck {
        guard result.active, let subject = result.subject, let expiresAt = result.expiresAt, now < expiresAt else {
            trace?.fail(
                "introspection.active",
                result.active
                    ? "active, but without sub or exp, or expired (exp=\(result.expiresAt.map(String.init) ?? "none"), now=\(now))"
                    : "active: false"
            )
            return .invalid(.unauthorized(Self.refusal))
        }
        trace?.pass(
            "introspection.active",
            "active: true, sub=\(subject) client_id=\(result.clientID ?? "(none)") iss=\(result.issuer ?? "(none)") exp=\(expiresAt)"
        )
        var principal = Principal(
            subject: subject,
            kind: .oauth,
            scopes: result.scopes,
            clientID: result.clientID,
            expiresAt: expiresAt
        )
        principal.issuer = result.issuer
        principal.issuedElsewhere = true
        return .valid(principal)
    }

    /// The shared answer if another request or instance already has one, else the
    /// endpoints'. Either way remembered on this loop.
    private func lookUp(token: String, hash: String) -> EventLoopFuture<IntrospectionResult> {
        if let pending = self.inFlight[hash] { return pending }
        guard self.inFlight.count < Self.maximumInFlight else {
            return self.eventLoop.makeFailedFuture(GatewayError.authUnavailable)
        }
        let sharedAnswer: EventLoopFuture<IntrospectionResult?>
        if let shared {
            let logger = self.logger
            sharedAnswer = shared.cachedIntrospection(hash: hash).flatMapErrorThrowing { error in
                // The shared cache only saves work: without it, the endpoint is asked.
                logger.debug("introspection cache unavailable", metadata: ["error": "\(error)"])
                return nil
            }
        } else {
            sharedAnswer = self.eventLoop.makeSucceededFuture(nil)
        }
        let future = sharedAnswer.assumeIsolated().flatMap { cached -> EventLoopFuture<IntrospectionResult> in
            // Used while it lasts, but never longer than this configuration would have kept
            // it (another instance may run with a longer cache_max or negative_ttl).
            let now = self.clock.unixSeconds()
            if let cached, now < cached.cachedUntil, cached.cachedUntil <= now + self.longestCacheSeconds {
                return self.eventLoop.makeSucceededFuture(cached)
            }
            return self.introspect(token: token, at: 0, inactiveUntil: nil).assumeIsolated().map { result in
                if let shared = self.shared, self.clock.unixSeconds() < result.cachedUntil {
                    shared.cacheIntrospection(hash: hash, result: result, now: self.clock.unixSeconds()).whenFailure {
                        _ in
                    }
                }
                return result
            }.nonisolated()
        }.map { result -> IntrospectionResult in
            self.remember(hash, result)
            return result
        }.nonisolated()
        self.inFlight[hash] = future
        future.assumeIsolated().whenComplete { _ in self.inFlight[hash] = nil }
        return future
    }

    /// Asks endpoint `index` and, while they say inactive, the ones after it. An inactive
    /// verdict is remembered for the shortest `negative_ttl` among those asked.
    private func introspect(token: String, at index: Int, inactiveUntil: Int64?) -> EventLoopFuture<IntrospectionResult>
    {
        guard index < self.endpoints.count else {
            return self.eventLoop.makeSucceededFuture(.inactive(until: inactiveUntil ?? self.clock.unixSeconds()))
        }
        let endpoint = self.endpoints[index]
        let settings = endpoint.settings
        let request = HTTPPostRequest(
            url: settings.endpoint,
            headers: [("Authorization", endpoint.authorization)],
            body: Array(("token=" + FormEncoding.encode(token) + "&token_type_hint=access_token").utf8),
            timeout: settings.timeout.timeAmount,
            maximumBytes: IntrospectionAnswer.maximumBytes,
            caFile: settings.caFile
        )
        self.introspections += 1
        return self.post(request, self.eventLoop).hop(to: self.eventLoop).assumeIsolated().flatMapErrorThrowing {
            error -> HTTPFetchResponse in
            self.noteFailure(of: settings.endpoint, "introspection endpoint unavailable", "\(error)")
            throw GatewayError.authUnavailable
        }.flatMap { response -> EventLoopFuture<IntrospectionResult> in
            let now = self.clock.unixSeconds()
            let answer: IntrospectionAnswer
            do {
                answer = try IntrospectionAnswer.parse(status: response.status, body: response.body, now: now)
            } catch {
                self.noteFailure(of: settings.endpoint, "introspection answer unusable", "\(error)")
                return self.eventLoop.makeFailedFuture(GatewayError.authUnavailable)
            }
            if self.failing.remove(settings.endpoint) != nil {
                self.logger.notice(
                    "introspection endpoint answers again",
                    metadata: ["endpoint": "\(settings.endpoint)"]
                )
            }
            switch answer {
            case .active(let subject, let clientID, let scopes, let issuer, let expiresAt):
                let until = min(expiresAt, now + Self.wholeSeconds(settings.cacheMax))
                return self.eventLoop.makeSucceededFuture(
                    IntrospectionResult(
                        active: true,
                        subject: subject,
                        clientID: clientID,
                        scopes: scopes,
                        issuer: issuer ?? settings.endpoint,
                        expiresAt: expiresAt,
                        cachedUntil: until
                    )
                )
            case .inactive(let reason):
                self.logger.debug(
                    "introspection: token not active",
                    metadata: ["endpoint": "\(settings.endpoint)", "reason": "\(reason)"]
                )
                let until = now + Self.wholeSeconds(settings.negativeTTL)
                return self.introspect(token: token, at: index + 1, inactiveUntil: min(until, inactiveUntil ?? until))
            }
        }.nonisolated()
    }

    /// Logs an endpoint's failure when it starts failing, not on every request after.
    private func noteFailure(of endpoint: String, _ message: Logger.Message, _ reason: String) {
        guard self.failing.insert(endpoint).inserted else { return }
        self.logger.warning(
            "\(message); its tokens get 503 until it answers again",
            metadata: ["endpoint": "\(endpoint)", "reason": "\(reason)"]
        )
    }

    private static func wholeSeconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds + (attoseconds > 0 ? 1 : 0)
    }

    private func remember(_ hash: String, _ result: IntrospectionResult) {
        guard self.clock.unixSeconds() < result.cachedUntil else { return }
        if self.cache[hash] == nil {
            self.order.append(hash)
        }
        self.cache[hash] = result
        while self.cache.count > self.maximumEntries, let oldest = self.order.popFirst() {
            self.cache[oldest] = nil
        }
        if self.order.count > 2 * self.maximumEntries + 64 {
            self.order = CircularBuffer(self.order.filter { self.cache[$0] != nil })
        }
    }
}
