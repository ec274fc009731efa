import GatewayCore
import GatewayHTTP1
import NIOCore

/// The life of one client connection's current exchange, as pure state: where the request
/// stands on its way in (authorization, rate limiting, admitted), which side has finished,
/// whether an upstream connection is attached, whether the connection may be kept alive.
/// Every event returns the action the handler must run; the machine itself performs no
/// I/O. The completion of an asynchronous step (the credential store, the limiter, the
/// pool, a local endpoint) names its exchange, so one that arrives after that exchange
/// ended is recognised here as stale.
///
/// Owned by one `ProxyHandler`, touched only on its channel's event loop.
struct ProxyConnectionStateMachine {
    /// One exchange of the connection, for the completions of its asynchronous steps.
    struct ExchangeID: Hashable, CustomStringConvertible {
        let value: UInt64

        init(_ value: UInt64) { self.value = value }

        var description: String { "#\(self.value)" }
    }

    enum ResponsePhase: Equatable {
        case notStarted
        case streaming
    }

    /// Where a request goes once admitted; known from its path when the head is accepted.
    enum Destination: Equatable {
        case upstream
        /// Answered by the gateway itself (e.g. `/v1/api-keys`) once the body is complete,
        /// which may be at most `bodyLimit` bytes.
        case local(bodyLimit: Int64)
    }

    /// The steps before a request may go anywhere.
    enum Admission: Equatable {
        /// The credential is being checked (reads are held meanwhile).
        case authorizing
        /// The token buckets are being asked.
        case rateLimiting
        /// Authorized and within its limits: on its way to its destination.
        case admitted
    }

    /// A piece of the request body on its way to its destination, as the client's parser
    /// delivered it (chunked data decoded; trailers are dropped).
    enum RequestPart: Equatable {
        case body(ByteBuffer)
        case end
    }

    /// What an accepted request head says about the exchange's course.
    struct RequestHead: Equatable {
        var keepAlive: Bool
        var maxBodyBytes: Int64
        /// False when the head announced no body.
        var bodyExpected = true
        var destination = Destination.upstream
        /// The `Content-Length` the head declared, if any.
        var declaredLength: Int64? = nil
        /// `Expect: 100-continue`: the interim response is owed once the request is admitted.
        var expectsContinue = false
    }

    /// The exchange in progress.
    struct Exchange {
        let id: ExchangeID
        let destination: Destination
        var admission = Admission.authorizing
        var requestComplete = false
        var response: ResponsePhase = .notStarted
        var upstreamAttached = false
        /// Request parts decoded before the upstream connection was attached.
        var buffered: CircularBuffer<RequestPart> = CircularBuffer(initialCapacity: 4)
        var bodyBytes: Int64 = 0
        var maxBodyBytes: Int64
        let keepAliveRequested: Bool
        /// False when the head announced no body: only the parser's end marker is still to
        /// come, so the connection stays in sync even if the exchange fails before it.
        let bodyExpected: Bool
        let declaredLength: Int64?
        let expectsContinue: Bool
    }

    enum State {
        /// Waiting for the next request head.
        case idle
        case active(Exchange)
        /// The connection is being closed; every further event is ignored.
        case closing
    }

    /// What the handler must do next.
    enum Action: Equatable {
        case none
        /// Ask the authenticator about exchange `id`'s credential and route (reads stay
        /// held until the request is admitted).
        case authorize(ExchangeID)
        /// Ask the token buckets that apply to exchange `id`.
        case checkRateLimit(ExchangeID)
        /// Admitted for the upstream: get a connection from the pool for exchange `id`;
        /// send `100 Continue` first when `sendContinue`.
        case acquireUpstream(ExchangeID, sendContinue: Bool)
        /// Admitted for a built-in endpoint whose body is still coming: resume reading it;
        /// send `100 Continue` first when `sendContinue`.
        case readLocalBody(sendContinue: Bool)
        /// The request is for a built-in endpoint and its body is complete.
        case runLocalEndpoint(ExchangeID, [RequestPart])
        /// Send this part upstream.
        case forwardToUpstream(RequestPart)
        /// The upstream connection just acquired is attached: send the head and these
        /// buffered parts.
        case sendHeadAndBuffered([RequestPart])
        /// Hand back an upstream connection that was acquired after its exchange ended.
        case releaseUnusedUpstream
        case writeResponseHead(keepAlive: Bool)
        case writeResponseBody(ByteBuffer)
        /// The response is complete: write its end, return or close the upstream
        /// connection, close the client connection if asked.
        case finishExchange(trailers: HTTP1Trailers?, upstreamReusable: Bool, closeClient: Bool)
        /// Answer with a gateway error; abort the upstream connection if one is attached.
        case respondWithError(GatewayError, closeClient: Bool, abortUpstream: Bool)
        /// Close the client connection (the response already started, so no error can be sent).
        case closeClient(abortUpstream: Bool)
        /// The client went away: drop the upstream connection of the exchange, if any.
        case abortUpstream
        /// The built-in endpoint's response is ready: write it whole; close the client if asked.
        case finishLocal(closeClient: Bool)
    }

    private(set) var state: State = .idle
    private(set) var quiescing = false
    /// The id of the last exchange started on this connection.
    private var lastExchangeID: UInt64 = 0

    var isIdle: Bool {
        if case .idle = self.state { return true }
        return false
    }

    /// The connection closes once its last response is flushed: further requests are
    /// not read.
    var isClosing: Bool {
        if case .closing = self.state { return true }
        return false
    }

    var isAwaitingRequestBody: Bool {
        if case .active(let exchange) = self.state { return !exchange.requestComplete }
        return false
    }

    /// The exchange in progress, if any.
    var currentExchange: ExchangeID? {
        if case .active(let exchange) = self.state { return exchange.id }
        return nil
    }

    mutating func requestHeadAccepted(_ head: RequestHead) -> Action {
        switch self.state {
        case .idle:
            self.lastExchangeID &+= 1
            let exchange = Exchange(
                id: ExchangeID(self.lastExchangeID),
                destination: head.destination,
                maxBodyBytes: head.maxBodyBytes,
                keepAliveRequested: head.keepAlive,
                bodyExpected: head.bodyExpected,
                declaredLength: head.declaredLength,
                expectsContinue: head.expectsContinue
            )
            self.state = .active(exchange)
            return .authorize(exchange.id)
        case .closing:
            // The close is already on its way, after the last response is flushed; closing
            // now would drop every response not yet flushed.
            return .none
        case .active:
            // The decoder delivers one request at a time; a second head here means it
            // misbehaved. Fail closed.
            self.state = .closing
            return .closeClient(abortUpstream: true)
        }
    }

    mutating func requestHeadRejected(_ error: GatewayError) -> Action {
        switch self.state {
        case .idle:
            self.state = .closing
            return .respondWithError(error, closeClient: true, abortUpstream: false)
        case .closing:
            // As for an accepted head: the close follows the flush already under way.
            return .none
        case .active:
            self.state = .closing
            return .closeClient(abortUpstream: true)
        }
    }

    /// The exchange `id` if it is the one in progress and at `admission`; nil for a stale
    /// completion (its exchange failed, finished or the connection closed meanwhile).
    private func current(_ id: ExchangeID, at admission: Admission) -> Exchange? {
        guard case .active(let exchange) = self.state, exchange.id == id, exchange.admission == admission else {
            return nil
        }
        return exchange
    }

    /// The credential is good for the route; `rateLimited` when token buckets apply.
    mutating func authorizationSucceeded(_ id: ExchangeID, rateLimited: Bool) -> Action {
        guard var exchange = self.current(id, at: .authorizing) else { return .none }
        guard rateLimited else { return self.admit(exchange) }
        exchange.admission = .rateLimiting
        self.state = .active(exchange)
        return .checkRateLimit(id)
    }

    /// The request may not pass (401, 403, 404, 429 for a spent failure budget, 503...).
    mutating func authorizationFailed(_ id: ExchangeID, _ error: GatewayError) -> Action {
        guard let exchange = self.current(id, at: .authorizing) else { return .none }
        return self.fail(exchange, with: error)
    }

    /// Every token bucket admitted the request.
    mutating func rateLimitAdmitted(_ id: ExchangeID) -> Action {
        guard let exchange = self.current(id, at: .rateLimiting) else { return .none }
        return self.admit(exchange)
    }

    /// A bucket is empty (429) or the store that holds it cannot answer (503).
    mutating func rateLimitRefused(_ id: ExchangeID, _ error: GatewayError) -> Action {
        guard let exchange = self.current(id, at: .rateLimiting) else { return .none }
        return self.fail(exchange, with: error)
    }

    /// Authorized and within its limits: the request goes to its destination. The interim
    /// `100 Continue` is owed only now, so a client that waits for it never sends a body
    /// that is refused.
    private mutating func admit(_ admitted: Exchange) -> Action {
        var exchange = admitted
        exchange.admission = .admitted
        let sendContinue = exchange.expectsContinue && !exchange.requestComplete
        switch exchange.destination {
        case .upstream:
            self.state = .active(exchange)
            return .acquireUpstream(exchange.id, sendContinue: sendContinue)
        case .local(let bodyLimit):
            // Refused on the declared size, before the client is invited to send the body.
            if (exchange.declaredLength ?? 0) > bodyLimit || exchange.bodyBytes > bodyLimit {
                return self.fail(exchange, with: .bodyTooLarge(limit: Int(clamping: bodyLimit)))
            }
            exchange.maxBodyBytes = min(exchange.maxBodyBytes, bodyLimit)
            guard exchange.requestComplete else {
                self.state = .active(exchange)
                return .readLocalBody(sendContinue: sendContinue)
            }
            let parts = Array(exchange.buffered)
            exchange.buffered.removeAll()
            self.state = .active(exchange)
            return .runLocalEndpoint(exchange.id, parts)
        }
    }

    /// The built-in endpoint of exchange `id` produced its response.
    mutating func localResponseReady(_ id: ExchangeID) -> Action {
        guard let exchange = self.current(id, at: .admitted), case .local = exchange.destination else { return .none }
        let keepAlive = exchange.keepAliveRequested && !self.quiescing && exchange.requestComplete
        self.state = keepAlive ? .idle : .closing
        return .finishLocal(closeClient: !keepAlive)
    }

    mutating func requestBody(_ buffer: ByteBuffer) -> Action {
        guard case .active(var exchange) = self.state, !exchange.requestComplete else { return .none }
        exchange.bodyBytes += Int64(buffer.readableBytes)
        if exchange.bodyBytes > exchange.maxBodyBytes {
            return self.fail(exchange, with: .bodyTooLarge(limit: Int(clamping: exchange.maxBodyBytes)))
        }
        if exchange.upstreamAttached {
            self.state = .active(exchange)
            return .forwardToUpstream(.body(buffer))
        }
        exchange.buffered.append(.body(buffer))
        self.state = .active(exchange)
        return .none
    }

    mutating func requestEnd() -> Action {
        guard case .active(var exchange) = self.state, !exchange.requestComplete else { return .none }
        exchange.requestComplete = true
        if exchange.upstreamAttached {
            self.state = .active(exchange)
            return .forwardToUpstream(.end)
        }
        if case .local = exchange.destination, exchange.admission == .admitted {
            let parts = Array(exchange.buffered)
            exchange.buffered.removeAll()
            self.state = .active(exchange)
            return .runLocalEndpoint(exchange.id, parts)
        }
        exchange.buffered.append(.end)
        self.state = .active(exchange)
        return .none
    }

    /// The pool produced a connection for exchange `id`.
    mutating func upstreamAcquired(_ id: ExchangeID) -> Action {
        guard var exchange = self.current(id, at: .admitted), exchange.destination == .upstream,
            !exchange.upstreamAttached
        else {
            return .releaseUnusedUpstream
        }
        exchange.upstreamAttached = true
        let parts = Array(exchange.buffered)
        exchange.buffered.removeAll()
        self.state = .active(exchange)
        return .sendHeadAndBuffered(parts)
    }

    /// The pool could not connect for exchange `id`.
    mutating func upstreamAcquireFailed(_ id: ExchangeID, _ error: GatewayError) -> Action {
        guard let exchange = self.current(id, at: .admitted), !exchange.upstreamAttached else { return .none }
        return self.fail(exchange, with: error)
    }

    mutating func responseHead() -> Action {
        guard case .active(var exchange) = self.state, exchange.response == .notStarted else {
            return .none
        }
        exchange.response = .streaming
        self.state = .active(exchange)
        // A response that starts before the request body is complete ends the connection:
        // the unread rest of the body cannot be framed reliably.
        let keepAlive = exchange.keepAliveRequested && !self.quiescing && exchange.requestComplete
        return .writeResponseHead(keepAlive: keepAlive)
    }

    mutating func responseBody(_ buffer: ByteBuffer) -> Action {
        guard case .active(let exchange) = self.state, exchange.response == .streaming else { return .none }
        return .writeResponseBody(buffer)
    }

    mutating func responseEnd(_ trailers: HTTP1Trailers?, upstreamKeepAlive: Bool) -> Action {
        guard case .active(let exchange) = self.state, exchange.response == .streaming else { return .none }
        let keepAlive = exchange.keepAliveRequested && !self.quiescing && exchange.requestComplete
        self.state = keepAlive ? .idle : .closing
        return .finishExchange(
            trailers: trailers,
            upstreamReusable: upstreamKeepAlive && exchange.requestComplete,
            closeClient: !keepAlive
        )
    }

    /// The upstream connection failed, timed out or sent garbage.
    mutating func upstreamFailed(_ error: GatewayError) -> Action {
        guard case .active(let exchange) = self.state else { return .none }
        return self.fail(exchange, with: error)
    }

    /// The client stopped sending its body for too long.
    mutating func requestBodyTimedOut() -> Action {
        guard case .active(let exchange) = self.state, !exchange.requestComplete else { return .none }
        return self.fail(exchange, with: .bodyReadTimeout)
    }

    /// The request parser refused the client's bytes.
    mutating func clientProtocolError(_ error: GatewayError) -> Action {
        switch self.state {
        case .idle:
            self.state = .closing
            return .respondWithError(error, closeClient: true, abortUpstream: false)
        case .active(let exchange):
            return self.fail(exchange, with: error)
        case .closing:
            return .none
        }
    }

    mutating func clientClosed() -> Action {
        let previous = self.state
        self.state = .closing
        if case .active(let exchange) = previous, exchange.upstreamAttached {
            return .abortUpstream
        }
        return .none
    }

    /// The server is draining: idle connections close now, busy ones after their response.
    mutating func quiesce() -> Action {
        self.quiescing = true
        if case .idle = self.state {
            self.state = .closing
            return .closeClient(abortUpstream: false)
        }
        return .none
    }

    /// Ends `exchange` with `error`: a JSON error if the response has not started, else
    /// an abrupt close (the only honest signal once a status line was sent).
    private mutating func fail(_ exchange: Exchange, with error: GatewayError) -> Action {
        switch exchange.response {
        case .notStarted:
            // The client's request was read in full, so the connection is still in sync
            // and may carry the next request.
            let inSync = exchange.requestComplete || (!exchange.bodyExpected && exchange.bodyBytes == 0)
            let keepAlive = inSync && exchange.keepAliveRequested && !self.quiescing
            self.state = keepAlive ? .idle : .closing
            return .respondWithError(error, closeClient: !keepAlive, abortUpstream: exchange.upstreamAttached)
        case .streaming:
            self.state = .closing
            return .closeClient(abortUpstream: exchange.upstreamAttached)
        }
    }
}
