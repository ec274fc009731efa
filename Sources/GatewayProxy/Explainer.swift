import GatewayAuth
import GatewayConfig
import GatewayCore
import GatewayHTTP1
import GatewayRateLimit
package import NIOCore

/// Runs one request through the request path's own decision code on a loop, without
/// forwarding it and without taking rate-limit tokens: request validation, path
/// normalisation, the route, the `Authenticator` (with a `DecisionTrace`), then the
/// rate-limit gate in peek mode. Stateless; call `explain` on the loop's event loop.
package enum Explainer {
    package static func explain(_ request: ExplainRequest, on loop: LoopContext) -> EventLoopFuture<ExplainReport> {
        loop.eventLoop.preconditionInEventLoop()
        // Like a request, the explanation reads one configuration, whatever a reload does
        // while it waits on the store.
        let snapshot = loop.snapshot
        let trace = DecisionTrace()
        let parsed = Self.parse(request, maxHeaderBytes: loop.configuration.server.maxHeaderBytes)
        let head = try? parsed.get()
        let clientAddress = ClientAddress.resolve(
            peer: request.clientAddress,
            forwardedFor: head.map { $0.values($0.forwardedFor, named: "x-forwarded-for") } ?? [],
            trusted: snapshot.trustedProxies
        )
        let authorization = head.map { $0.values($0.authorization, named: "authorization") } ?? []
        let (rawPath, _) = ProxyHandler.splitTarget(request.target)
        var report = ExplainReport(
            method: request.method,
            path: rawPath,
            normalizedPath: nil,
            clientAddress: clientAddress,
            tokenFingerprint: Self.fingerprint(authorization),
            steps: [],
            principal: nil,
            rateLimits: [],
            error: nil,
            destination: nil
        )
        func finish(_ error: GatewayError?) -> EventLoopFuture<ExplainReport> {
            report.steps = trace.steps
            report.error = error
            return loop.eventLoop.makeSucceededFuture(report)
        }

        // The request path's own checks: the strict parser, then the policy on the head.
        let validated = parsed.flatMap { RequestValidation.validate($0, maxBodyBytes: snapshot.maxBodyBytes) }
        if case .failure(let error) = validated {
            trace.fail("request", error.description)
            return finish(error)
        }
        trace.pass("request", "method, target and headers are acceptable")
        let normalizedPath: String
        switch RequestDecision.normalize(rawPath) {
        case .success(let path):
            normalizedPath = path
            trace.pass("path", path == rawPath ? "\(path) (already normal)" : "\(rawPath) normalises to \(path)")
        case .failure(let error):
            trace.fail("path", "refused by normalisation: \(error.description)")
            return finish(error)
        }
        report.normalizedPath = normalizedPath
        let builtIn = BuiltInEndpoint.match(
            normalizedPath,
            sessionsEnabled: snapshot.handlers.sessionEndpoints != nil,
            local: snapshot.handlers.localEndpoints
        )
        let route = RequestDecision.route(
            method: request.method,
            normalizedPath: normalizedPath,
            builtIn: builtIn,
            routes: snapshot.routes
        )
        trace.info("route.match", "\(route.label)\(route.rateLimit.map { " (rate limit \($0))" } ?? "")")
        route.describe(method: request.method, normalizedPath: normalizedPath, into: trace)
        let outcome = snapshot.handlers.authenticator.authorize(
            route.requirement,
            authorization: authorization,
            queryCarriesToken: ProxyHandler.queryCarriesToken(request.target),
            trace: trace
        )
        let decided: EventLoopFuture<Principal?>
        switch outcome {
        case .allow(let principal):
            decided = loop.eventLoop.makeSucceededFuture(principal)
        case .deny(let error):
            return finish(error)
        case .pending(let future):
            decided = future.map { Optional($0) }
        }
        let eventLoop = loop.eventLoop
        return decided.assumeIsolated().flatMap { principal -> EventLoopFuture<ExplainReport> in
            report.principal = principal
            let policies = snapshot.rateLimitPolicies(route: route.rateLimit, principal: principal)
            guard !policies.isEmpty else {
                trace.info("rate_limit", "no policy applies")
                report.destination = builtIn == nil ? "upstream" : "gateway"
                return finish(nil)
            }
            let key = principal?.rateLimitKey ?? ClientAddress.bucketKey(clientAddress)
            var asked: [EventLoopFuture<RateLimitOutcome>] = []
            for policy in policies {
                switch loop.rateLimiter.peek(policy: policy, key: key) {
                case .decided(let decision): asked.append(eventLoop.makeSucceededFuture(.decided(decision)))
                case .pending(let future): asked.append(future)
                }
            }
            return EventLoopFuture.whenAllSucceed(asked, on: eventLoop).assumeIsolated().flatMap { outcomes in
                for outcome in outcomes {
                    switch outcome {
                    case .decided(let decision):
                        report.rateLimits.append((key, decision))
                        let before = decision.allowed ? decision.remaining + 1 : decision.remaining
                        if decision.allowed {
                            trace.pass(
                                "rate_limit.\(decision.policy)",
                                "bucket \(key): \(before) of \(decision.limit) tokens; this request would take one"
                            )
                        } else {
                            trace.fail(
                                "rate_limit.\(decision.policy)",
                                "bucket \(key): \(before) of \(decision.limit) tokens; next token in \(decision.retryAfterSeconds)s"
                            )
                        }
                    case .storeUnavailable(let policy):
                        trace.fail(
                            "rate_limit.\(policy)",
                            "the rate-limit store cannot answer and the policy says on_store_unavailable = deny"
                        )
                    }
                }
                // The request path's own verdict on these outcomes.
                switch RateLimitGate.combine(outcomes) {
                case .admitted:
                    report.destination = builtIn == nil ? "upstream" : "gateway"
                    return finish(nil)
                case .refused(let error):
                    return finish(error)
                }
            }.nonisolated()
        }.flatMapErrorThrowing { error in
            let refusal = error as? GatewayError ?? .authUnavailable
            report.steps = trace.steps
            report.error = refusal
            return report
        }.nonisolated()
    }

    /// The request as the client would send it, through the client connection's parser
    /// (with a placeholder Host when none is given).
    static func parse(_ request: ExplainRequest, maxHeaderBytes: Int) -> Result<HTTP1RequestHead, GatewayError> {
        var text = "\(request.method) \(request.target) HTTP/1.1\r\n"
        var hasHost = false
        for field in request.headers {
            if field.name.lowercased() == "host" { hasHost = true }
            text += "\(field.name): \(field.value)\r\n"
        }
        if !hasHost { text += "Host: explain.invalid\r\n" }
        text += "\r\n"
        var parser = HTTP1RequestParser(limits: ClientRequestDecoder.limits(maxHeaderBytes: maxHeaderBytes))
        parser.feed(ByteBuffer(string: text))
        switch parser.next() {
        case .head(let head):
            return .success(head)
        case .error(let error):
            return .failure(error.gatewayError(maxHeaderBytes: maxHeaderBytes))
        case .body, .end, nil:
            return .failure(.badRequest(HTTP1ParseError.invalidRequestLine.rule))
        }
    }

    private static func fingerprint(_ authorization: [String]) -> String? {
        guard let header = authorization.first else { return nil }
        let token = header.split(separator: " ", maxSplits: 1).last.map { String($0).trimmingCharacters() } ?? header
        return Authenticator.tokenFingerprint(token)
    }
}

extension String {
    fileprivate func trimmingCharacters() -> String {
        var slice = Substring(self)
        while slice.first == " " { slice.removeFirst() }
        return String(slice)
    }
}
