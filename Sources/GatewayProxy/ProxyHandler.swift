import GatewayAuth
import GatewayConfig
import GatewayCore
import GatewayRateLimit
import NIOCore
import NIOHTTP1

/// The last handler of a client connection: validates each request, forwards it through
/// a pooled upstream connection on the same event loop, streams both bodies with
/// backpressure, and answers every failure with the gateway's JSON error.
///
/// Decisions are made by `ProxyConnectionStateMachine`; this class only runs the actions
/// it returns. One instance per client connection, touched only on that connection's
/// event loop (which its upstream connection shares: no thread hops).
final class ProxyHandler: ChannelDuplexHandler, UpstreamResponseDelegate {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// The per-request context: what the handler keeps about the exchange in progress,
    /// beyond the machine's state. It holds the configuration snapshot taken when the head
    /// arrived, and every later step of the request (authorization, rate limits, the
    /// upstream head, the pool, HSTS, the access log) reads that snapshot, never the loop's
    /// current one: a reload while the request waits changes nothing about it.
    /// A class: it is handed to the completions of the asynchronous steps and updated on
    /// every read, and copying a struct of this size cost a measurable share of each
    /// request in the profile.
    private final class ExchangeRecord {
        /// The configuration in force when the head arrived.
        let snapshot: LoopSnapshot
        let requestID: String
        let method: HTTPMethod
        let path: String
        let version: HTTPVersion
        /// The client's head; the upstream head is derived from it once admitted.
        let head: HTTPRequestHead
        let framing: RequestBodyFraming
        /// Normalized path plus the client's query.
        let uri: String
        let normalizedPath: String
        /// A built-in endpoint the gateway answers itself, or nil (forwarded).
        let builtIn: BuiltInEndpoint?
        /// The rule the request falls under (nil for a head refused before routing).
        var route: RequestDecision.Route?
        var principal: Principal?
        /// The client behind any trusted proxies (the TCP peer otherwise).
        let clientAddress: String
        /// The token buckets that apply, once authorized.
        var rateLimitPolicies: [RateLimitPolicy] = []
        /// `RateLimit-Policy`/`RateLimit` for the response, when the request was limited.
        var rateLimitHeaders: [(name: String, value: String)] = []
        let started: NIODeadline
        var upstream: UpstreamConnection?
        var upstreamStarted: NIODeadline?
        /// When the authorization decision was made.
        var authorizedAt: NIODeadline?
        /// When the credential store was asked (a cache miss), if it was.
        var storeAskedAt: NIODeadline?
        var status = 0
        var bytesIn: Int64 = 0
        var bytesOut: Int64 = 0
        /// The response cannot be delimited without closing (HTTP/1.0 without length).
        var closeAfterResponse = false

        /// The route that decided the request, for metrics.
        var routeLabel: String { self.route?.label ?? "invalid" }
        var bodyTimeout: TimeAmount { self.snapshot.bodyTimeout }

        init(
            snapshot: LoopSnapshot,
            requestID: String,
            head: HTTPRequestHead,
            path: String,
            framing: RequestBodyFraming,
            uri: String,
            normalizedPath: String,
            builtIn: BuiltInEndpoint?,
            clientAddress: String,
            started: NIODeadline
        ) {
            self.snapshot = snapshot
            self.requestID = requestID
            self.method = head.method
            self.path = path
            self.version = head.version
            self.head = head
            self.framing = framing
            self.uri = uri
            self.normalizedPath = normalizedPath
            self.builtIn = builtIn
            self.clientAddress = clientAddress
            self.started = started
        }
    }

    /// What an event brought besides the machine's verdict, for the action that uses it.
    private enum Delivery {
        case nothing
        /// A connection the pool handed over for the exchange.
        case upstream(UpstreamConnection, UpstreamPool)
        case responseHead(HTTPResponseHead)
        case localResponse(LocalResponse, outcome: String, error: String?)
    }

    private let loop: LoopContext
    private let clientScheme: String
    /// The client connection came through a TLS listener: responses carry HSTS.
    private let isTLS: Bool
    private var machine = ProxyConnectionStateMachine()
    private var context: ChannelHandlerContext?
    private var ids = RequestIDGenerator()
    private var clientAddress = "unknown"
    private var exchange: ExchangeRecord?
    /// Reads from the client are held while no upstream is attached or it cannot take more.
    private var readsHeld = false
    private var readPending = false
    /// Made by the first request with a body: a connection that only sends bodiless
    /// requests never pays for the timer (nor for the weak reference its callback holds).
    private var bodyTimer: LoopTimer?
    private var bodyTimeout: LoopTimer {
        if let timer = self.bodyTimer { return timer }
        let timer = LoopTimer { [weak self] in self?.bodyTimedOut() }
        self.bodyTimer = timer
        return timer
    }
    /// The body timer was stopped while reads were held and must restart when they resume.
    private var bodyTimerPaused = false

    /// The connection's request decoder, which knows why it refused a request.
    private let decoder: ClientRequestDecoder

    init(loop: LoopContext, clientScheme: String, decoder: ClientRequestDecoder) {
        self.loop = loop
        self.clientScheme = clientScheme
        self.decoder = decoder
        self.isTLS = clientScheme == "https"
    }

    /// HSTS for responses on TLS listeners (nil on plain ones or with HSTS off), from the
    /// request's snapshot; the loop's current one for an error outside any exchange.
    private func strictTransportSecurity(_ exchange: ExchangeRecord?) -> String? {
        guard self.isTLS else { return nil }
        guard let exchange else { return self.loop.strictTransportSecurity }
        return exchange.snapshot.strictTransportSecurity
    }

    // MARK: ChannelHandler lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.clientAddress = context.channel.remoteAddress?.ipAddress ?? "unknown"
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.bodyTimer?.cancel()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        self.clientAddress = context.channel.remoteAddress?.ipAddress ?? "unknown"
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.bodyTimer?.cancel()
        self.run(self.machine.clientClosed())
        if let exchange = self.exchange {
            self.log(
                exchange,
                status: exchange.status == 0 ? 499 : exchange.status,
                outcome: "aborted",
                error: "client_closed"
            )
            self.exchange = nil
        }
        context.fireChannelInactive()
    }

    // MARK: inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.receivedHead(head, context: context)
        case .body(let buffer):
            self.exchange?.bytesIn += Int64(buffer.readableBytes)
            if self.machine.isAwaitingRequestBody {
                self.armBodyTimer()
            }
            self.run(self.machine.requestBody(buffer))
        case .end:
            self.cancelBodyTimer()
            // Request trailers are dropped, not filtered: the gateway decides on the head,
            // and some upstream frameworks merge trailers into the headers, where a
            // trailer could forge identity, forwarding or credential fields.
            self.run(self.machine.requestEnd(nil))
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.exchange?.upstream?.flush()
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The decoder's refusals arrive as `HTTPParserError`s (ordered by the pipelining
        // handler); the decoder keeps the reason.
        guard error is HTTPParserError, let failure = self.decoder.failure else {
            // I/O errors (reset, broken pipe): nothing can be said to this client.
            context.close(promise: nil)
            return
        }
        let gatewayError = failure.gatewayError(maxHeaderBytes: self.loop.configuration.server.maxHeaderBytes)
        self.run(self.machine.clientProtocolError(gatewayError))
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.exchange?.upstream?.setReadsAllowed(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            self.run(self.machine.quiesce())
        }
        context.fireUserInboundEventTriggered(event)
    }

    // MARK: outbound

    func read(context: ChannelHandlerContext) {
        if self.readsHeld {
            self.readPending = true
        } else {
            context.read()
        }
    }

    private func setReadsHeld(_ held: Bool) {
        let wasHeld = self.readsHeld
        self.readsHeld = held
        if held {
            // A stall the gateway causes (no upstream yet, or an upstream that cannot
            // take more) is not the client's: the body clock stops meanwhile.
            if !wasHeld { self.pauseBodyTimer() }
        } else {
            if wasHeld, self.machine.isAwaitingRequestBody, self.bodyTimerPaused {
                self.armBodyTimer()
            }
            if self.readPending, let context {
                self.readPending = false
                context.read()
            }
        }
    }

    // MARK: request head

    private func receivedHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        // A head pipelined behind a response that ends the connection: it is never
        // answered (the client reads the `Connection: close` and retries elsewhere).
        guard !self.machine.isClosing else { return }
        context.triggerUserOutboundEvent(ConnectionPhaseEvent.requestHeadReceived, promise: nil)
        // The one read of the loop's configuration for this request: every later step
        // reads this snapshot, whatever a reload puts in force meanwhile.
        let snapshot = self.loop.snapshot
        let maxBodyBytes = snapshot.maxBodyBytes
        let requestID = ForwardingRules.requestID(for: head, generator: &self.ids)
        let (rawPath, query) = Self.splitTarget(head.uri)

        func reject(_ error: GatewayError) {
            self.exchange = self.makeRecord(
                head,
                snapshot: snapshot,
                requestID: requestID,
                path: rawPath,
                framing: .none,
                uri: head.uri,
                normalizedPath: rawPath,
                // A browser route's refusal is its own page, even for a malformed request.
                builtIn: BuiltInEndpoint.match(
                    rawPath,
                    sessionsEnabled: snapshot.handlers.sessionEndpoints != nil,
                    local: snapshot.handlers.localEndpoints
                )
            )
            self.run(self.machine.requestHeadRejected(error))
        }

        let framing: RequestBodyFraming
        switch RequestValidation.validate(head, maxBodyBytes: maxBodyBytes) {
        case .failure(let error):
            reject(error)
            return
        case .success(let validated):
            framing = validated
        }

        let expectation = head.headers["expect"]
        if !expectation.isEmpty {
            guard expectation.count == 1, expectation[0].lowercased() == "100-continue", head.version.minor == 1 else {
                reject(
                    GatewayError(
                        status: 417,
                        code: "expectation_failed",
                        description: "Only \"Expect: 100-continue\" is supported."
                    )
                )
                return
            }
        }

        let normalizedPath: String
        switch RequestDecision.normalize(rawPath) {
        case .success(let path):
            normalizedPath = path
        case .failure(let error):
            reject(error)
            return
        }
        let uri = query.map { "\(normalizedPath)?\($0)" } ?? normalizedPath
        let builtIn = BuiltInEndpoint.match(
            normalizedPath,
            sessionsEnabled: snapshot.handlers.sessionEndpoints != nil,
            local: snapshot.handlers.localEndpoints
        )
        let exchange = self.makeRecord(
            head,
            snapshot: snapshot,
            requestID: requestID,
            path: normalizedPath,
            framing: framing,
            uri: uri,
            normalizedPath: normalizedPath,
            builtIn: builtIn
        )
        exchange.route = RequestDecision.route(
            method: head.method.rawValue,
            normalizedPath: normalizedPath,
            builtIn: builtIn,
            routes: snapshot.routes
        )
        self.exchange = exchange
        if framing != .none {
            self.armBodyTimer()
        }
        var declaredLength: Int64?
        if case .contentLength(let length) = framing {
            declaredLength = length
        }
        self.run(
            self.machine.requestHeadAccepted(
                ProxyConnectionStateMachine.RequestHead(
                    keepAlive: head.isKeepAlive,
                    maxBodyBytes: maxBodyBytes,
                    bodyExpected: framing != .none,
                    destination: builtIn.map { .local(bodyLimit: $0.maximumBodyBytes) } ?? .upstream,
                    declaredLength: declaredLength,
                    expectsContinue: !expectation.isEmpty
                )
            )
        )
    }

    /// `(path, query)` of an origin-form request target.
    static func splitTarget(_ uri: String) -> (String, String?) {
        guard uri.utf8.contains(UInt8(ascii: "?")), let mark = uri.firstIndex(of: "?") else { return (uri, nil) }
        return (String(uri[..<mark]), String(uri[uri.index(after: mark)...]))
    }

    /// Whether the query string carries a bearer token (RFC 6750 §2.3), which the gateway
    /// refuses: URLs end up in logs and browser histories.
    static func queryCarriesToken(_ uri: String) -> Bool {
        guard uri.utf8.contains(UInt8(ascii: "?")), let query = splitTarget(uri).1 else { return false }
        for pair in query.split(separator: "&") {
            let name = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            if name == "access_token" || name == "api_key" || name == "apikey" || name == "token" {
                return true
            }
        }
        return false
    }

    private func makeRecord(
        _ head: HTTPRequestHead,
        snapshot: LoopSnapshot,
        requestID: String,
        path: String,
        framing: RequestBodyFraming,
        uri: String,
        normalizedPath: String,
        builtIn: BuiltInEndpoint?
    ) -> ExchangeRecord {
        ExchangeRecord(
            snapshot: snapshot,
            requestID: requestID,
            head: head,
            path: path,
            framing: framing,
            uri: uri,
            normalizedPath: normalizedPath,
            builtIn: builtIn,
            clientAddress: ClientAddress.resolve(
                peer: self.clientAddress,
                forwardedFor: head.headers["x-forwarded-for"],
                trusted: snapshot.trustedProxies
            ),
            started: self.loop.clock.now()
        )
    }

    // MARK: authorization and rate limits

    /// Asks the authenticator of the request's snapshot; its answer goes to the machine
    /// as an event of exchange `id` (a late one after the exchange ended is the machine's
    /// to drop).
    private func authorize(_ exchange: ExchangeRecord, id: ProxyConnectionStateMachine.ExchangeID) {
        self.setReadsHeld(true)
        let outcome = exchange.snapshot.handlers.authenticator.authorize(
            exchange.route?.requirement ?? .denied,
            authorization: exchange.head.headers["authorization"],
            queryCarriesToken: Self.queryCarriesToken(exchange.head.uri),
            client: exchange.clientAddress
        )
        switch outcome {
        case .allow(let principal):
            self.authorized(principal, exchange: exchange, id: id)
        case .deny(let error):
            exchange.authorizedAt = self.loop.clock.now()
            self.run(self.machine.authorizationFailed(id, error))
        case .pending(let future):
            exchange.storeAskedAt = self.loop.clock.now()
            future.assumeIsolated().whenComplete { result in
                switch result {
                case .success(let principal):
                    self.authorized(principal, exchange: exchange, id: id)
                case .failure(let error as GatewayError):
                    exchange.authorizedAt = self.loop.clock.now()
                    self.run(self.machine.authorizationFailed(id, error))
                case .failure:
                    self.run(self.machine.authorizationFailed(id, .authUnavailable))
                }
            }
        }
    }

    /// The credential passed: the policies of the request's snapshot decide whether the
    /// token buckets are asked next.
    private func authorized(
        _ principal: Principal?,
        exchange: ExchangeRecord,
        id: ProxyConnectionStateMachine.ExchangeID
    ) {
        exchange.authorizedAt = self.loop.clock.now()
        exchange.principal = principal
        exchange.rateLimitPolicies = exchange.snapshot.rateLimitPolicies(
            route: exchange.route?.rateLimit,
            principal: principal
        )
        self.run(self.machine.authorizationSucceeded(id, rateLimited: !exchange.rateLimitPolicies.isEmpty))
    }

    /// Draws from every bucket that applies (a refusal never reaches the upstream).
    private func checkRateLimit(_ exchange: ExchangeRecord, id: ProxyConnectionStateMachine.ExchangeID) {
        let key = exchange.principal?.rateLimitKey ?? ClientAddress.bucketKey(exchange.clientAddress)
        switch RateLimitGate.evaluate(
            exchange.rateLimitPolicies,
            key: key,
            limiter: self.loop.rateLimiter,
            eventLoop: self.loop.eventLoop
        ) {
        case .now(let result):
            self.rateLimited(result, exchange: exchange, id: id)
        case .later(let pending):
            pending.whenDecided { result in
                self.rateLimited(result, exchange: exchange, id: id)
            }
        }
    }

    private func rateLimited(
        _ result: RateLimitGate.Result,
        exchange: ExchangeRecord,
        id: ProxyConnectionStateMachine.ExchangeID
    ) {
        switch result {
        case .admitted(let decisions):
            exchange.rateLimitHeaders = RateLimitHeaders.fields(decisions)
            self.run(self.machine.rateLimitAdmitted(id))
        case .refused(let error):
            self.run(self.machine.rateLimitRefused(id, error))
        }
    }

    /// The head the upstream gets, from the client's and the request's snapshot only.
    private func upstreamHead(_ exchange: ExchangeRecord) -> HTTPRequestHead {
        let snapshot = exchange.snapshot
        var upstreamHead = ForwardingRules.upstreamRequestHead(
            exchange.head,
            framing: exchange.framing,
            context: ForwardingContext(
                requestID: exchange.requestID,
                clientAddress: exchange.clientAddress,
                clientScheme: self.clientScheme,
                upstreamAuthority: snapshot.upstreamAuthority,
                preserveHost: snapshot.preserveHost,
                principal: exchange.principal,
                forwardAuthorization: snapshot.forwardAuthorization,
                uri: exchange.uri,
                forwardMethodOverride: snapshot.forwardMethodOverride
            )
        )
        // The gateway answers `Expect` itself; the upstream gets the body unconditionally.
        upstreamHead.headers.remove(name: "expect")
        return upstreamHead
    }

    /// `100 Continue`, owed once the request is authorized, admitted by the limiter and
    /// within the size limit that applies: a client that waits for it never sends a body
    /// that is refused.
    private func writeContinue(_ exchange: ExchangeRecord, context: ChannelHandlerContext) {
        let interim = HTTPResponseHead(version: exchange.version, status: .continue)
        context.writeAndFlush(self.wrapOutboundOut(.head(interim)), promise: nil)
    }

    private func runLocalEndpoint(
        _ parts: [HTTPClientRequestPart],
        id: ProxyConnectionStateMachine.ExchangeID,
        context: ChannelHandlerContext
    ) {
        guard let exchange = self.exchange, let builtIn = exchange.builtIn else {
            assertionFailure("the machine sends only a built-in endpoint's exchange here")
            context.close(promise: nil)
            return
        }
        var body: [UInt8] = []
        for case .body(.byteBuffer(let buffer)) in parts {
            body += buffer.readableBytesView
        }
        let handlers = exchange.snapshot.handlers
        let response: EventLoopFuture<LocalResponse>
        switch builtIn {
        case .apiKeys:
            // The route requires a credential, so an admitted request has a principal.
            guard let principal = exchange.principal else {
                response = context.eventLoop.makeFailedFuture(GatewayError.internalError)
                break
            }
            response = handlers.apiKeyEndpoints.handle(
                method: exchange.method.rawValue,
                normalizedPath: exchange.normalizedPath,
                query: Self.splitTarget(exchange.head.uri).1,
                body: body,
                principal: principal,
                eventLoop: context.eventLoop
            ).map { LocalResponse(status: $0.status, body: $0.body) }
        case .session:
            // Matched against this snapshot's handlers, which have the session endpoints.
            guard let endpoints = handlers.sessionEndpoints else {
                response = context.eventLoop.makeFailedFuture(GatewayError.internalError)
                break
            }
            response = endpoints.handle(
                method: exchange.method.rawValue,
                normalizedPath: exchange.normalizedPath,
                body: body,
                authorization: exchange.head.headers["authorization"],
                clientAddress: exchange.clientAddress,
                eventLoop: context.eventLoop
            ).map { LocalResponse(status: $0.status, body: $0.body, headers: $0.headers) }
        case .local(let endpoint):
            response = endpoint.handle(self.localRequest(exchange, body: body), eventLoop: context.eventLoop)
        }
        response.assumeIsolated().whenComplete { result in
            let delivery: Delivery
            switch result {
            case .success(let response):
                delivery = .localResponse(response, outcome: "local", error: nil)
            case .failure(let error):
                let gatewayError = error as? GatewayError ?? .internalError
                delivery = .localResponse(
                    self.errorResponse(gatewayError, exchange: exchange),
                    outcome: "rejected",
                    error: gatewayError.code
                )
            }
            self.run(self.machine.localResponseReady(id), delivering: delivery)
        }
    }

    /// What a local endpoint is handed: the request as the proxy parsed it.
    private func localRequest(_ exchange: ExchangeRecord, body: [UInt8]) -> LocalRequest {
        LocalRequest(
            method: exchange.method.rawValue,
            normalizedPath: exchange.normalizedPath,
            query: String(Self.splitTarget(exchange.head.uri).1 ?? ""),
            headers: exchange.head.headers.map { GatewayError.HeaderField($0.name, $0.value) },
            body: body,
            clientAddress: exchange.clientAddress,
            isTLS: self.isTLS,
            requestID: exchange.requestID
        )
    }

    /// `error` as the endpoint that was asked shows it: a local endpoint may render its own
    /// (an HTML page for browser routes); everything else answers the JSON error.
    private func errorResponse(_ error: GatewayError, exchange: ExchangeRecord) -> LocalResponse {
        self.errorResponse(error, exchange: Optional(exchange), requestID: exchange.requestID)
    }

    private func errorResponse(_ error: GatewayError, exchange: ExchangeRecord?, requestID: String) -> LocalResponse {
        if let exchange, case .local(let endpoint) = exchange.builtIn {
            return endpoint.errorResponse(error, request: self.localRequest(exchange, body: []))
        }
        return LocalResponse.json(error, requestID: requestID)
    }

    private func writeLocal(
        _ response: LocalResponse,
        outcome: String,
        error: String?,
        close: Bool,
        context: ChannelHandlerContext
    ) {
        guard let exchange = self.exchange else { return }
        self.exchange = nil
        self.cancelBodyTimer()
        let headers = OwnResponseHead.fields(
            for: response,
            requestID: exchange.requestID,
            close: close,
            strictTransportSecurity: self.strictTransportSecurity(exchange)
        )
        let head = HTTPResponseHead(
            version: exchange.version.minor == 0 ? .http1_0 : .http1_1,
            status: HTTPResponseStatus(statusCode: response.status),
            headers: headers
        )
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(
            self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))),
            promise: nil
        )
        exchange.bytesOut = Int64(response.body.count)
        exchange.status = response.status
        self.log(exchange, status: response.status, outcome: outcome, error: error)
        self.endResponse(trailers: nil, close: close, context: context)
    }

    // MARK: actions

    /// Runs what the machine decided. `delivery` is what the event that produced the
    /// action brought with it (a pooled connection, a response head, a local response).
    private func run(_ action: ProxyConnectionStateMachine.Action, delivering delivery: Delivery = .nothing) {
        guard let context else {
            // The handler left the pipeline: a connection the pool handed over goes back.
            if case .upstream(let connection, let pool) = delivery {
                pool.release(connection, reusable: true)
            }
            return
        }
        switch action {
        case .none:
            break

        case .authorize(let id):
            guard let exchange = self.exchange else { return }
            self.authorize(exchange, id: id)

        case .checkRateLimit(let id):
            guard let exchange = self.exchange else { return }
            self.checkRateLimit(exchange, id: id)

        case .acquireUpstream(let id, let sendContinue):
            guard let exchange = self.exchange else { return }
            self.setReadsHeld(true)
            if sendContinue {
                self.writeContinue(exchange, context: context)
            }
            let pool = exchange.snapshot.pool
            pool.acquire { [self] result in
                let handler = self
                switch result {
                case .success(let connection):
                    handler.run(handler.machine.upstreamAcquired(id), delivering: .upstream(connection, pool))
                case .failure(let error):
                    handler.loop.metrics.upstreamConnectFailed()
                    // The pool says why in a GatewayError (a TLS failure); anything else is
                    // a refused or timed-out connect.
                    handler.run(
                        handler.machine.upstreamAcquireFailed(id, error as? GatewayError ?? .upstreamUnavailable)
                    )
                }
            }

        case .readLocalBody(let sendContinue):
            // The body of a built-in endpoint is read here, not forwarded: resume reading.
            self.setReadsHeld(false)
            if sendContinue, let exchange = self.exchange {
                self.writeContinue(exchange, context: context)
            }

        case .runLocalEndpoint(let id, let parts):
            self.setReadsHeld(false)
            self.runLocalEndpoint(parts, id: id, context: context)

        case .finishLocal(let close):
            guard case .localResponse(let response, let outcome, let error) = delivery else {
                assertionFailure("finishLocal without the local response")
                context.close(promise: nil)
                return
            }
            self.writeLocal(response, outcome: outcome, error: error, close: close, context: context)

        case .forwardToUpstream(let part):
            guard let upstream = self.exchange?.upstream else { return }
            upstream.send(part)
            if case .end = part {
                upstream.flush()
            } else if !upstream.isWritable {
                self.setReadsHeld(true)
            }

        case .sendHeadAndBuffered(let parts):
            guard case .upstream(let connection, _) = delivery, let exchange = self.exchange else {
                assertionFailure("sendHeadAndBuffered without an acquired connection")
                context.close(promise: nil)
                return
            }
            connection.attach(self)
            exchange.upstream = connection
            exchange.upstreamStarted = self.loop.clock.now()
            connection.send(.head(self.upstreamHead(exchange)))
            for part in parts {
                connection.send(part)
            }
            connection.flush()
            self.setReadsHeld(!connection.isWritable)

        case .releaseUnusedUpstream:
            guard case .upstream(let connection, let pool) = delivery else {
                assertionFailure("releaseUnusedUpstream without a connection")
                return
            }
            pool.release(connection, reusable: true)

        case .writeResponseHead(let keepAlive):
            guard case .responseHead(let head) = delivery, let exchange = self.exchange else {
                assertionFailure("writeResponseHead without the upstream's head")
                context.close(promise: nil)
                return
            }
            self.writeResponseHead(head, keepAlive: keepAlive, exchange: exchange, context: context)

        case .writeResponseBody(let buffer):
            self.exchange?.bytesOut += Int64(buffer.readableBytes)
            context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            if !context.channel.isWritable {
                self.exchange?.upstream?.setReadsAllowed(false)
            }

        case .finishExchange(let trailers, let upstreamReusable, let closeClient):
            guard let exchange = self.exchange else { return }
            self.exchange = nil
            self.cancelBodyTimer()
            if let upstream = exchange.upstream {
                exchange.upstream = nil
                upstream.detach()
                exchange.snapshot.pool.release(upstream, reusable: upstreamReusable)
            }
            let close = closeClient || exchange.closeAfterResponse
            self.log(exchange, status: exchange.status, outcome: "forwarded", error: nil)
            self.endResponse(
                trailers: ForwardingRules.sanitizedResponseTrailers(trailers),
                close: close,
                context: context
            )

        case .respondWithError(let error, let closeClient, let abortUpstream):
            self.cancelBodyTimer()
            let exchange = self.exchange
            self.exchange = nil
            if abortUpstream {
                exchange?.upstream?.abort()
            }
            self.writeError(error, exchange: exchange, close: closeClient, context: context)

        case .closeClient(let abortUpstream):
            self.cancelBodyTimer()
            if abortUpstream {
                self.exchange?.upstream?.abort()
            }
            if let exchange = self.exchange {
                self.exchange = nil
                self.log(exchange, status: exchange.status, outcome: "aborted", error: "stream_failed")
            }
            context.close(promise: nil)

        case .abortUpstream:
            self.exchange?.upstream?.abort()
        }
    }

    private func endResponse(trailers: HTTPHeaders?, close: Bool, context: ChannelHandlerContext) {
        if close {
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(self.wrapOutboundOut(.end(trailers))).whenComplete { _ in
                loopBound.value.close(promise: nil)
            }
        } else {
            // Tell the head-timeout handler before the end is written: writing it may
            // deliver an already-buffered pipelined request synchronously.
            context.triggerUserOutboundEvent(ConnectionPhaseEvent.awaitingRequest, promise: nil)
            self.setReadsHeld(false)
            context.writeAndFlush(self.wrapOutboundOut(.end(trailers)), promise: nil)
        }
    }

    private func writeError(
        _ error: GatewayError,
        exchange: ExchangeRecord?,
        close: Bool,
        context: ChannelHandlerContext
    ) {
        let requestID = exchange?.requestID ?? self.ids.next()
        let rendered = self.errorResponse(error, exchange: exchange, requestID: requestID)
        let body = rendered.body
        // Admitted by the limiter, then failed (502/504...): the token was spent, and the
        // client should still see where its budget stands.
        let rateLimitHeaders = error.status != 429 ? exchange?.rateLimitHeaders ?? [] : []
        let headers = OwnResponseHead.fields(
            for: rendered,
            requestID: requestID,
            close: close,
            strictTransportSecurity: self.strictTransportSecurity(exchange),
            rateLimitHeaders: rateLimitHeaders
        )
        let version = exchange?.version ?? .http1_1
        let head = HTTPResponseHead(
            version: version.minor == 0 ? .http1_0 : .http1_1,
            status: HTTPResponseStatus(statusCode: error.status),
            headers: headers
        )
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        // A HEAD request gets the head only; the encoder drops the body for it.
        context.write(
            self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))),
            promise: nil
        )
        if let exchange {
            exchange.bytesOut = Int64(body.count)
            self.log(exchange, status: error.status, outcome: "rejected", error: error.code)
        } else {
            self.loop.accessLog.record(
                AccessLog.Entry(
                    requestID: requestID,
                    method: "-",
                    path: "-",
                    status: error.status,
                    bytesIn: 0,
                    bytesOut: Int64(body.count),
                    clientAddress: self.clientAddress,
                    upstreamMicroseconds: nil,
                    totalMicroseconds: 0,
                    outcome: "rejected",
                    error: error.code
                )
            )
        }
        self.endResponse(trailers: nil, close: close, context: context)
    }

    // MARK: UpstreamResponseDelegate

    func upstreamResponseHead(_ head: HTTPResponseHead) {
        self.run(self.machine.responseHead(), delivering: .responseHead(head))
    }

    private func writeResponseHead(
        _ head: HTTPResponseHead,
        keepAlive: Bool,
        exchange: ExchangeRecord,
        context: ChannelHandlerContext
    ) {
        exchange.status = Int(head.status.code)
        var clientHead = ForwardingRules.clientResponseHead(
            head,
            requestVersion: exchange.version,
            requestID: exchange.requestID,
            keepAlive: keepAlive
        )
        // Decided from the head the client gets, which may have lost the upstream's length.
        if !keepAlive || !clientHead.isKeepAlive {
            exchange.closeAfterResponse = true
        }
        for field in exchange.rateLimitHeaders {
            // Ours replace any the upstream sent: the gateway is the limiter clients see.
            clientHead.headers.replaceOrAdd(name: field.name, value: field.value)
        }
        if let value = self.strictTransportSecurity(exchange) {
            clientHead.headers.replaceOrAdd(name: "Strict-Transport-Security", value: value)
        }
        context.write(self.wrapOutboundOut(.head(clientHead)), promise: nil)
    }

    func upstreamResponseBody(_ buffer: ByteBuffer) {
        self.run(self.machine.responseBody(buffer))
    }

    func upstreamResponseEnd(_ trailers: HTTPHeaders?, keepAlive: Bool) {
        self.run(self.machine.responseEnd(trailers, upstreamKeepAlive: keepAlive))
    }

    func upstreamReadComplete() {
        self.context?.flush()
    }

    func upstreamFailed(_ error: GatewayError) {
        self.run(self.machine.upstreamFailed(error))
    }

    func upstreamWritabilityChanged(isWritable: Bool) {
        if self.exchange?.upstream != nil {
            self.setReadsHeld(!isWritable)
        }
    }

    // MARK: body timer

    private func armBodyTimer() {
        guard let context, let timeout = self.exchange?.bodyTimeout else { return }
        if self.readsHeld {
            self.bodyTimerPaused = true
            self.bodyTimer?.disarm()
            return
        }
        self.bodyTimerPaused = false
        self.bodyTimeout.arm(in: timeout, on: context.eventLoop)
    }

    private func bodyTimedOut() {
        guard self.context != nil else { return }
        self.run(self.machine.requestBodyTimedOut())
    }

    private func pauseBodyTimer() {
        guard self.bodyTimer?.deadline != nil else { return }
        self.bodyTimer?.disarm()
        self.bodyTimerPaused = true
    }

    private func cancelBodyTimer() {
        self.bodyTimerPaused = false
        self.bodyTimer?.disarm()
    }

    // MARK: logging

    private func log(_ exchange: ExchangeRecord, status: Int, outcome: String, error: String?) {
        let now = self.loop.clock.now()
        let total = (now - exchange.started).nanoseconds / 1000
        let upstream = exchange.upstreamStarted.map { (now - $0).nanoseconds / 1000 }
        self.loop.metrics.record(
            route: exchange.routeLabel,
            outcome: outcome,
            status: status,
            credential: exchange.principal?.kind.rawValue,
            totalMicroseconds: total,
            upstreamMicroseconds: upstream,
            authMicroseconds: exchange.authorizedAt.map { ($0 - exchange.started).nanoseconds / 1000 }
        )
        guard exchange.snapshot.accessLog.shouldRecord(status: status, draw: self.ids.nextUnitInterval()) else {
            return
        }
        let auth = exchange.authorizedAt.map { ($0 - exchange.started).nanoseconds / 1000 }
        let store: Int64?
        if let asked = exchange.storeAskedAt, let decided = exchange.authorizedAt {
            store = (decided - asked).nanoseconds / 1000
        } else {
            store = nil
        }
        exchange.snapshot.accessLog.record(
            AccessLog.Entry(
                requestID: exchange.requestID,
                method: exchange.method.rawValue,
                path: exchange.path,
                status: status,
                bytesIn: exchange.bytesIn,
                bytesOut: exchange.bytesOut,
                clientAddress: exchange.clientAddress,
                upstreamMicroseconds: upstream,
                totalMicroseconds: total,
                outcome: outcome,
                error: error,
                credential: exchange.principal?.kind.rawValue,
                subject: exchange.principal?.subject,
                keyID: exchange.principal?.keyID,
                authMicroseconds: auth,
                storeMicroseconds: store
            )
        )
    }
}
