import GatewayCore
import NIOCore
import NIOHTTP1

/// The life of one client connection's current exchange, as pure state: which side has
/// finished, whether an upstream connection is attached, whether the connection may be
/// kept alive. Every event returns the action the handler must run; the machine itself
/// performs no I/O.
///
/// Owned by one `ProxyHandler`, touched only on its channel's event loop.
struct ProxyConnectionStateMachine {
    enum ResponsePhase: Equatable {
        case notStarted
        case streaming
    }

    /// Where an authorized request goes.
    enum Destination: Equatable {
        /// Not decided yet: authorization is pending.
        case undecided
        case upstream
        /// Answered by the gateway itself (e.g. `/v1/api-keys`) once the body is complete.
        case local
    }

    /// The exchange in progress.
    struct Exchange {
        var destination: Destination = .undecided
        var requestComplete = false
        var response: ResponsePhase = .notStarted
        var upstreamAttached = false
        /// Request parts decoded before the upstream connection was attached.
        var buffered: CircularBuffer<HTTPClientRequestPart> = CircularBuffer(initialCapacity: 4)
        var bodyBytes: Int64 = 0
        var maxBodyBytes: Int64
        let keepAliveRequested: Bool
        /// False when the head announced no body: only the parser's end marker is still to
        /// come, so the connection stays in sync even if the exchange fails before it.
        var bodyExpected = true
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
        /// Get a connection from the pool.
        case acquireUpstream
        /// Decide whether the request may pass (the handler asks the authenticator).
        case authorize
        /// The request is for a built-in endpoint and its body is complete.
        case runLocalEndpoint([HTTPClientRequestPart])
        /// Send this part upstream.
        case forwardToUpstream(HTTPClientRequestPart)
        /// The upstream connection is attached: send the head and these buffered parts.
        case sendHeadAndBuffered([HTTPClientRequestPart])
        /// Hand back an upstream connection that was acquired after the exchange ended.
        case releaseUnusedUpstream
        case writeResponseHead(keepAlive: Bool)
        case writeResponseBody(ByteBuffer)
        /// The response is complete: write its end, return or close the upstream
        /// connection, close the client connection if asked.
        case finishExchange(trailers: HTTPHeaders?, upstreamReusable: Bool, closeClient: Bool)
        /// Answer with a gateway error; abort the upstream connection if one is attached.
        case respondWithError(GatewayError, closeClient: Bool, abortUpstream: Bool)
        /// Close the client connection (the response already started, so no error can be sent).
        case closeClient(abortUpstream: Bool)
        /// The client went away: drop the upstream connection of the exchange, if any.
        case abortUpstream
        /// The built-in endpoint's response is written; close the client if asked.
        case finishLocal(closeClient: Bool)
    }

    private(set) var state: State = .idle
    private(set) var quiescing = false

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

    mutating func requestHeadAccepted(keepAlive: Bool, maxBodyBytes: Int64, bodyExpected: Bool = true) -> Action {
        switch self.state {
        case .idle:
            var exchange = Exchange(maxBodyBytes: maxBodyBytes, keepAliveRequested: keepAlive)
            exchange.bodyExpected = bodyExpected
            self.state = .active(exchange)
            return .authorize
        case .closing:
            // The close is already on its way, after the last response is flushed. The
            // pipelining handler hands over the next buffered head while that response is
            // being written; closing now would drop every response not yet flushed.
            return .none
        case .active:
            // The pipelining handler delivers one request at a time; a second head here
            // means the codec misbehaved. Fail closed.
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

    /// The request may pass; `destination` says where it goes.
    mutating func authorized(destination: Destination, localBodyLimit: Int64) -> Action {
        guard case .active(var exchange) = self.state, exchange.destination == .undecided else { return .none }
        exchange.destination = destination
        switch destination {
        case .undecided:
            preconditionFailure("authorization must decide a destination")
        case .upstream:
            self.state = .active(exchange)
            return .acquireUpstream
        case .local:
            if exchange.bodyBytes > localBodyLimit {
                return self.fail(exchange, with: .bodyTooLarge(limit: Int(localBodyLimit)))
            }
            exchange.maxBodyBytes = min(exchange.maxBodyBytes, localBodyLimit)
            guard exchange.requestComplete else {
                self.state = .active(exchange)
                return .none
            }
            let parts = Array(exchange.buffered)
            exchange.buffered.removeAll()
            self.state = .active(exchange)
            return .runLocalEndpoint(parts)
        }
    }

    /// The request may not pass (401, 403, 404, 503...).
    mutating func authorizationFailed(_ error: GatewayError) -> Action {
        guard case .active(let exchange) = self.state, exchange.destination == .undecided else { return .none }
        return self.fail(exchange, with: error)
    }

    /// A built-in endpoint produced its response: the handler writes it whole.
    mutating func localResponseReady() -> Action {
        guard case .active(let exchange) = self.state, exchange.destination == .local else { return .none }
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
            return .forwardToUpstream(.body(.byteBuffer(buffer)))
        }
        exchange.buffered.append(.body(.byteBuffer(buffer)))
        self.state = .active(exchange)
        return .none
    }

    mutating func requestEnd(_ trailers: HTTPHeaders?) -> Action {
        guard case .active(var exchange) = self.state, !exchange.requestComplete else { return .none }
        exchange.requestComplete = true
        if exchange.upstreamAttached {
            self.state = .active(exchange)
            return .forwardToUpstream(.end(trailers))
        }
        if exchange.destination == .local {
            let parts = Array(exchange.buffered)
            exchange.buffered.removeAll()
            self.state = .active(exchange)
            return .runLocalEndpoint(parts)
        }
        exchange.buffered.append(.end(trailers))
        self.state = .active(exchange)
        return .none
    }

    mutating func upstreamAcquired() -> Action {
        guard case .active(var exchange) = self.state, exchange.destination == .upstream, !exchange.upstreamAttached
        else {
            return .releaseUnusedUpstream
        }
        exchange.upstreamAttached = true
        let parts = Array(exchange.buffered)
        exchange.buffered.removeAll()
        self.state = .active(exchange)
        return .sendHeadAndBuffered(parts)
    }

    mutating func upstreamAcquireFailed(_ error: GatewayError) -> Action {
        guard case .active(let exchange) = self.state else { return .none }
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

    mutating func responseEnd(_ trailers: HTTPHeaders?, upstreamKeepAlive: Bool) -> Action {
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
