import GatewayAuth
import GatewayConfig
import GatewayCore
import GatewayHTTP1
import GatewayRateLimit
import NIOCore

/// The last handler of a client connection: validates each request, forwards it through
/// a pooled upstream connection on the same event loop, streams both bodies with
/// backpressure, and answers every failure with the gateway's JSON error.
///
/// Decisions are made by `ProxyConnectionStateMachine`; this class only runs the actions
/// it returns. One instance per client connection, touched only on that connection's
/// event loop (which its upstream connection shares: no thread hops).
final class ProxyHandler: ChannelDuplexHandler, UpstreamResponseDelegate {
    typealias InboundIn = ClientRequestPart
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

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
        let method: HTTP1Method
        let path: String
        /// 0 for HTTP/1.0, 1 for HTTP/1.1.
        let minorVersion: Int
        /// The client's head as the parser read it; the upstream head is written from its
        /// bytes once admitted. Nil for a request the parser refused.
        let head: HTTP1RequestHead?
        /// The request target as the client sent it.
        let target: String
        let framing: HTTP1BodyFraming
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
        /// The client's `Authorization` values (none for a refused request).
        var authorization: [String] {
            self.head.map { $0.values($0.authorization, named: "authorization") } ?? []
        }
        var bodyTimeout: TimeAmount { self.snapshot.bodyTimeout }

        init(
            snapshot: LoopSnapshot,
            requestID: String,
            method: HTTP1Method,
            minorVersion: Int,
            head: HTTP1RequestHead?,
            target: String,
            path: String,
            framing: HTTP1BodyFraming,
            uri: String,
            normalizedPath: String,
            builtIn: BuiltInEndpoint?,
            clientAddress: String,
            started: NIODeadline
        ) {
            self.snapshot = snapshot
            self.requestID = requestID
            self.method = method
            self.path = path
            self.minorVersion = minorVersion
            self.head = head
            self.target = target
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
        case responseHead(HTTP1ResponseHead)
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

    /// The connection's request decoder, told when a response ended (the next pipelined
    /// request waits for that).
    private let decoder: ClientRequestDecoder
    /// Every byte written to the client is made here.
    private var writer = ClientResponseWriter()

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
            self.run(self.machine.requestEnd())
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.exchange?.upstream?.flush()
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The decoder's refusals come after the responses still owed.
        guard let refusal = error as? ClientRequestRefusal else {
            // I/O errors (reset, broken pipe): nothing can be said to this client.
            context.close(promise: nil)
            return
        }
        let gatewayError = refusal.error.gatewayError(maxHeaderBytes: self.loop.configuration.server.maxHeaderBytes)
        if self.machine.isIdle, let request = refusal.request {
            // The request line was read: the refusal is answered as its endpoint answers
            // errors (a browser route's HTML page) and under the client's request id.
            self.exchange = self.refusedRecord(request)
        }
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

    private func receivedHead(_ head: HTTP1RequestHead, context: ChannelHandlerContext) {
        // A head pipelined behind a response that ends the connection: it is never
        // answered (the client reads the `Connection: close` and retries elsewhere).
        guard !self.machine.isClosing else { return }
        context.triggerUserOutboundEvent(ConnectionPhaseEvent.requestHeadReceived, promise: nil)
        // The one read of the loop's configuration for this request: every later step
        // reads this snapshot, whatever a reload puts in force meanwhile.
        let snapshot = self.loop.snapshot
        let maxBodyBytes = snapshot.maxBodyBytes
        let requestID = ForwardingRules.requestID(for: head, generator: &self.ids)
        let target = head.string(head.target)
        let (rawPath, query) = Self.splitTarget(target)

        func reject(_ error: GatewayError) {
            self.exchange = self.makeRecord(
                head,
                method: head.method,
                minorVersion: head.minorVersion,
                target: target,
                snapshot: snapshot,
                requestID: requestID,
                path: rawPath,
                framing: .none,
                uri: target,
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

        // The parser checked the syntax; what is left is policy (TRACE, the body size
        // limit, `Expect`).
        let framing: HTTP1BodyFraming
        switch RequestValidation.validate(head, maxBodyBytes: maxBodyBytes) {
        case .failure(let error):
            reject(error)
            return
        case .success(let validated):
            framing = validated
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
            method: head.method,
            minorVersion: head.minorVersion,
            target: target,
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
                    keepAlive: head.keepAlive,
                    maxBodyBytes: maxBodyBytes,
                    bodyExpected: framing != .none,
                    destination: builtIn.map { .local(bodyLimit: $0.maximumBodyBytes) } ?? .upstream,
                    declaredLength: declaredLength,
                    expectsContinue: head.expect.count > 0
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

    /// The record of a request the parser refused after its request line: enough to answer
    /// as its endpoint answers errors and to log it.
    private func refusedRecord(_ request: HTTP1RefusedRequest) -> ExchangeRecord {
        let snapshot = self.loop.snapshot
        let requestID = request.requestID.flatMap { RequestID.isValid($0) ? $0 : nil } ?? self.ids.next()
        let rawPath = Self.splitTarget(request.target).0
        let path = (try? RequestDecision.normalize(rawPath).get()) ?? rawPath
        return self.makeRecord(
            nil,
            method: request.method,
            minorVersion: 1,
            target: request.target,
            snapshot: snapshot,
            requestID: requestID,
            path: path,
            framing: .none,
            uri: request.target,
            normalizedPath: path,
            builtIn: BuiltInEndpoint.match(
                path,
                sessionsEnabled: snapshot.handlers.sessionEndpoints != nil,
                local: snapshot.handlers.localEndpoints
            )
        )
    }

    private func makeRecord(
        _ head: HTTP1RequestHead?,
        method: HTTP1Method,
        minorVersion: Int,
        target: String,
        snapshot: LoopSnapshot,
        requestID: String,
        path: String,
        framing: HTTP1BodyFraming,
        uri: String,
        normalizedPath: String,
        builtIn: BuiltInEndpoint?
    ) -> ExchangeRecord {
        ExchangeRecord(
            snapshot: snapshot,
            requestID: requestID,
            method: method,
            minorVersion: minorVersion,
            head: head,
            target: target,
            path: path,
            framing: framing,
            uri: uri,
            normalizedPath: normalizedPath,
            builtIn: builtIn,
            clientAddress: ClientAddress.resolve(
                peer: self.clientAddress,
                forwardedFor: head.map { $0.values($0.forwardedFor, named: "x-forwarded-for") } ?? [],
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
            authorization: exchange.authorization,
            queryCarriesToken: Self.queryCarriesToken(exchange.target),
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

    /// The head the upstream gets, from the client's bytes and the request's snapshot only.
    private func upstreamHead(_ exchange: ExchangeRecord, head: HTTP1RequestHead) -> ByteBuffer {
        let snapshot = exchange.snapshot
        var buffer = ByteBuffer()
        buffer.reserveCapacity(head.bytes.readableBytes + 512)
        ForwardingRules.writeUpstreamRequestHead(
            head,
            framing: exchange.framing,
            context: ForwardingContext(
                requestID: exchange.requestID,
                clientAddress: exchange.clientAddress,
                clientScheme: self.clientScheme,
                upstreamAuthority: snapshot.upstreamAuthority,
                preserveHost: snapshot.preserveHost,
                principal: exchange.principal,
                forwardAuthorization: snapshot.forwardAuthorization,
                // The client's bytes when normalisation changed nothing.
                uri: exchange.uri == exchange.target ? nil : exchange.uri,
                forwardMethodOverride: snapshot.forwardMethodOverride
            ),
            into: &buffer
        )
        return buffer
    }

    /// `100 Continue`, owed once the request is authorized, admitted by the limiter and
    /// within the size limit that applies: a client that waits for it never sends a body
    /// that is refused.
    private func writeContinue(_ exchange: ExchangeRecord, context: ChannelHandlerContext) {
        let interim = ClientResponseWriter.continueHead(allocator: context.channel.allocator)
        context.writeAndFlush(self.wrapOutboundOut(interim), promise: nil)
    }

    /// Every byte of a response goes out here, flushed by `endResponse` or at the end of
    /// the upstream's read.
    private func writeRaw(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        context.write(self.wrapOutboundOut(buffer), promise: nil)
    }

    private func runLocalEndpoint(
        _ parts: [ProxyConnectionStateMachine.RequestPart],
        id: ProxyConnectionStateMachine.ExchangeID,
        context: ChannelHandlerContext
    ) {
        guard let exchange = self.exchange, let builtIn = exchange.builtIn else {
            assertionFailure("the machine sends only a built-in endpoint's exchange here")
            context.close(promise: nil)
            return
        }
        var body: [UInt8] = []
        for case .body(let buffer) in parts {
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
                query: Self.splitTarget(exchange.target).1,
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
                authorization: exchange.authorization,
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
            query: String(Self.splitTarget(exchange.target).1 ?? ""),
            headers: exchange.head.map { head in
                head.fields.map { GatewayError.HeaderField(head.string($0.name), head.string($0.value)) }
            } ?? [],
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
        let bytes = self.writer.ownResponse(
            status: response.status,
            fields: headers,
            body: response.body,
            requestMinorVersion: exchange.minorVersion,
            isHEAD: exchange.method == .HEAD,
            allocator: context.channel.allocator
        )
        self.writeRaw(bytes, context: context)
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
            switch part {
            case .body(let buffer):
                upstream.sendBody(buffer)
                if !upstream.isWritable {
                    self.setReadsHeld(true)
                }
            case .end:
                upstream.sendEnd()
                upstream.flush()
            }

        case .sendHeadAndBuffered(let parts):
            guard case .upstream(let connection, _) = delivery, let exchange = self.exchange, let head = exchange.head
            else {
                assertionFailure("sendHeadAndBuffered without an acquired connection")
                context.close(promise: nil)
                return
            }
            connection.attach(self, requestMethod: exchange.method)
            exchange.upstream = connection
            exchange.upstreamStarted = self.loop.clock.now()
            connection.sendHead(self.upstreamHead(exchange, head: head), chunked: exchange.framing == .chunked)
            for part in parts {
                switch part {
                case .body(let buffer): connection.sendBody(buffer)
                case .end: connection.sendEnd()
                }
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
            self.writer.body(buffer, allocator: context.channel.allocator) { self.writeRaw($0, context: context) }
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
            self.endResponse(trailers: trailers, close: close, context: context)

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

    /// The one place a response to the client ends: the chunked body's end with the trailers
    /// a client may see, then the flush, and the close or the wait for the next request.
    private func endResponse(trailers: HTTP1Trailers?, close: Bool, context: ChannelHandlerContext) {
        let end = self.writer.end(trailers: trailers, allocator: context.channel.allocator)
        if close {
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            let last = end ?? context.channel.allocator.buffer(capacity: 0)
            context.writeAndFlush(self.wrapOutboundOut(last)).whenComplete { _ in
                loopBound.value.close(promise: nil)
            }
            self.decoder.responseEnded(closing: true)
        } else {
            // Tell the head-timeout handler before the end is written: writing it may
            // deliver an already-buffered pipelined request synchronously.
            context.triggerUserOutboundEvent(ConnectionPhaseEvent.awaitingRequest, promise: nil)
            self.setReadsHeld(false)
            if let end {
                context.write(self.wrapOutboundOut(end), promise: nil)
            }
            context.flush()
            // Only after the response is written: the decoder may now deliver the next
            // pipelined request, which may be answered at once.
            self.decoder.responseEnded()
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
        // A HEAD request gets the head only; a refusal outside any exchange has its body.
        let bytes = self.writer.ownResponse(
            status: error.status,
            fields: headers,
            body: body,
            requestMinorVersion: exchange?.minorVersion ?? 1,
            isHEAD: exchange?.method == .HEAD,
            allocator: context.channel.allocator
        )
        self.writeRaw(bytes, context: context)
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

    func upstreamResponseHead(_ head: HTTP1ResponseHead) {
        self.run(self.machine.responseHead(), delivering: .responseHead(head))
    }

    private func writeResponseHead(
        _ head: HTTP1ResponseHead,
        keepAlive: Bool,
        exchange: ExchangeRecord,
        context: ChannelHandlerContext
    ) {
        exchange.status = head.status
        let (bytes, clientKeepAlive) = self.writer.forwardedHead(
            head,
            ClientResponseWriter.Edits(
                requestMinorVersion: exchange.minorVersion,
                isHEAD: exchange.method == .HEAD,
                requestID: exchange.requestID,
                keepAlive: keepAlive,
                rateLimitHeaders: exchange.rateLimitHeaders,
                strictTransportSecurity: self.strictTransportSecurity(exchange)
            ),
            allocator: context.channel.allocator
        )
        // Decided from the head the client gets, which may have lost the upstream's length.
        if !clientKeepAlive {
            exchange.closeAfterResponse = true
        }
        self.writeRaw(bytes, context: context)
    }

    func upstreamResponseBody(_ buffer: ByteBuffer) {
        self.run(self.machine.responseBody(buffer))
    }

    func upstreamResponseEnd(_ trailers: HTTP1Trailers?, keepAlive: Bool) {
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
