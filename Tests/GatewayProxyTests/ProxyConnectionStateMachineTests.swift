import GatewayCore
import GatewayHTTP1
import NIOCore
import NIOHTTP1
import Testing

@testable import GatewayProxy

private typealias Machine = ProxyConnectionStateMachine

private func buffer(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

private func body(_ text: String) -> ProxyConnectionStateMachine.RequestPart { .body(buffer(text)) }

/// The ids of a connection's first and second exchanges.
private let first = Machine.ExchangeID(1)
private let second = Machine.ExchangeID(2)

extension ProxyConnectionStateMachine {
    /// A head with these fields, the rest defaulted.
    fileprivate mutating func requestHeadAccepted(
        keepAlive: Bool,
        maxBodyBytes: Int64,
        bodyExpected: Bool = true,
        destination: Destination = .upstream,
        declaredLength: Int64? = nil,
        expectsContinue: Bool = false
    ) -> Action {
        self.requestHeadAccepted(
            RequestHead(
                keepAlive: keepAlive,
                maxBodyBytes: maxBodyBytes,
                bodyExpected: bodyExpected,
                destination: destination,
                declaredLength: declaredLength,
                expectsContinue: expectsContinue
            )
        )
    }
}

/// A machine with an accepted request head.
private func started(keepAlive: Bool = true, maxBodyBytes: Int64 = 100) -> Machine {
    var machine = Machine()
    #expect(machine.requestHeadAccepted(keepAlive: keepAlive, maxBodyBytes: maxBodyBytes) == .authorize(first))
    #expect(machine.authorizationSucceeded(first, rateLimited: false) == .acquireUpstream(first, sendContinue: false))
    return machine
}

/// A machine whose request (head and end) was sent upstream on an attached connection.
private func forwarded(keepAlive: Bool = true) -> Machine {
    var machine = started(keepAlive: keepAlive)
    #expect(machine.requestEnd() == .none)
    #expect(machine.upstreamAcquired(first) == .sendHeadAndBuffered([.end]))
    return machine
}

@Suite struct ProxyConnectionStateMachineTests {
    // MARK: the normal cycle

    @Test func startsIdle() {
        let machine = Machine()
        #expect(machine.isIdle)
        #expect(!machine.isAwaitingRequestBody)
        #expect(!machine.quiescing)
    }

    @Test func acceptedHeadIsAuthorizedThenAcquiresUpstream() {
        var machine = Machine()
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 10) == .authorize(first))
        #expect(
            machine.authorizationSucceeded(first, rateLimited: false) == .acquireUpstream(first, sendContinue: false)
        )
        #expect(!machine.isIdle)
        #expect(machine.isAwaitingRequestBody)
    }

    @Test func normalCycleReturnsToIdleWithKeepAlive() {
        var machine = forwarded()
        #expect(!machine.isAwaitingRequestBody)
        #expect(machine.responseHead() == .writeResponseHead(keepAlive: true))
        #expect(machine.responseBody(buffer("hello")) == .writeResponseBody(buffer("hello")))
        #expect(machine.responseBody(buffer("!")) == .writeResponseBody(buffer("!")))
        #expect(
            machine.responseEnd(nil, upstreamKeepAlive: true)
                == .finishExchange(trailers: nil, upstreamReusable: true, closeClient: false)
        )
        #expect(machine.isIdle)

        // The connection carries a second exchange, under a new id.
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 10) == .authorize(second))
        #expect(
            machine.authorizationSucceeded(second, rateLimited: false) == .acquireUpstream(second, sendContinue: false)
        )
        #expect(machine.requestEnd() == .none)
        #expect(machine.upstreamAcquired(second) == .sendHeadAndBuffered([.end]))
        #expect(machine.responseHead() == .writeResponseHead(keepAlive: true))
        #expect(
            machine.responseEnd(nil, upstreamKeepAlive: true)
                == .finishExchange(trailers: nil, upstreamReusable: true, closeClient: false)
        )
        #expect(machine.isIdle)
    }

    @Test func trailersArePassedToFinish() {
        var machine = forwarded()
        _ = machine.responseHead()
        let trailers = HTTP1Trailers(
            bytes: ByteBuffer(string: "X-Checksum: abc\r\n\r\n"),
            fields: [HTTP1Field(name: 0..<10, value: 12..<15, line: 0..<17)]
        )
        #expect(
            machine.responseEnd(trailers, upstreamKeepAlive: true)
                == .finishExchange(trailers: trailers, upstreamReusable: true, closeClient: false)
        )
    }

    @Test func clientWithoutKeepAliveIsClosedAfterResponse() {
        var machine = forwarded(keepAlive: false)
        #expect(machine.responseHead() == .writeResponseHead(keepAlive: false))
        #expect(
            machine.responseEnd(nil, upstreamKeepAlive: true)
                == .finishExchange(trailers: nil, upstreamReusable: true, closeClient: true)
        )
        #expect(!machine.isIdle)
        // A closing connection takes no new request; its close already follows the flush.
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 10) == .none)
        #expect(machine.isClosing)
    }

    @Test func upstreamWithoutKeepAliveIsNotReused() {
        var machine = forwarded()
        _ = machine.responseHead()
        #expect(
            machine.responseEnd(nil, upstreamKeepAlive: false)
                == .finishExchange(trailers: nil, upstreamReusable: false, closeClient: false)
        )
        #expect(machine.isIdle)
    }

    // MARK: request body

    @Test func bodyBeforeAttachIsBufferedThenSentWithTheHead() {
        var machine = started()
        #expect(machine.requestBody(buffer("abc")) == .none)
        #expect(machine.isAwaitingRequestBody)
        #expect(machine.requestBody(buffer("def")) == .none)
        #expect(machine.requestEnd() == .none)
        #expect(!machine.isAwaitingRequestBody)
        #expect(machine.upstreamAcquired(first) == .sendHeadAndBuffered([body("abc"), body("def"), .end]))
    }

    @Test func partialBodyBeforeAttachThenForwarded() {
        var machine = started()
        #expect(machine.requestBody(buffer("abc")) == .none)
        #expect(machine.upstreamAcquired(first) == .sendHeadAndBuffered([body("abc")]))
        #expect(machine.requestBody(buffer("def")) == .forwardToUpstream(body("def")))
        #expect(machine.requestEnd() == .forwardToUpstream(.end))
        // Parts after the end are ignored.
        #expect(machine.requestBody(buffer("x")) == .none)
        #expect(machine.requestEnd() == .none)
    }

    @Test func nothingBufferedGivesEmptySend() {
        var machine = started()
        #expect(machine.upstreamAcquired(first) == .sendHeadAndBuffered([]))
        #expect(machine.requestEnd() == .forwardToUpstream(.end))
    }

    @Test func bodyAtTheLimitIsAccepted() {
        var machine = started(maxBodyBytes: 10)
        #expect(machine.requestBody(buffer("12345")) == .none)
        #expect(machine.requestBody(buffer("67890")) == .none)
        #expect(machine.requestEnd() == .none)
    }

    @Test func bodyOverLimitBeforeAttachIs413AndCloses() {
        var machine = started(maxBodyBytes: 10)
        #expect(machine.requestBody(buffer("123456")) == .none)
        #expect(
            machine.requestBody(buffer("78901"))
                == .respondWithError(.bodyTooLarge(limit: 10), closeClient: true, abortUpstream: false)
        )
        #expect(!machine.isIdle)
        #expect(machine.requestBody(buffer("x")) == .none)
        #expect(machine.requestEnd() == .none)
        #expect(machine.upstreamAcquired(first) == .releaseUnusedUpstream)
    }

    @Test func bodyOverLimitAfterAttachAbortsUpstream() {
        var machine = started(maxBodyBytes: 4)
        _ = machine.upstreamAcquired(first)
        let action = machine.requestBody(buffer("12345"))
        #expect(action == .respondWithError(.bodyTooLarge(limit: 4), closeClient: true, abortUpstream: true))
        if case .respondWithError(let error, _, _) = action {
            #expect(error.status == 413)
            #expect(error.code == "request_too_large")
        }
    }

    @Test func bodyOverLimitAfterResponseStartedClosesClient() {
        var machine = started(maxBodyBytes: 4)
        _ = machine.upstreamAcquired(first)
        #expect(machine.responseHead() == .writeResponseHead(keepAlive: false))
        #expect(machine.requestBody(buffer("12345")) == .closeClient(abortUpstream: true))
    }

    // MARK: early responses

    @Test func responseBeforeRequestCompleteEndsTheConnection() {
        var machine = started()
        _ = machine.upstreamAcquired(first)
        #expect(machine.requestBody(buffer("part")) == .forwardToUpstream(body("part")))
        #expect(machine.responseHead() == .writeResponseHead(keepAlive: false))
        // The client may still be sending: body keeps flowing upstream.
        #expect(machine.requestBody(buffer("more")) == .forwardToUpstream(body("more")))
        #expect(machine.responseBody(buffer("r")) == .writeResponseBody(buffer("r")))
        #expect(
            machine.responseEnd(nil, upstreamKeepAlive: true)
                == .finishExchange(trailers: nil, upstreamReusable: false, closeClient: true)
        )
        #expect(!machine.isIdle)
        #expect(machine.requestEnd() == .none)
    }

    @Test func responsePartsOutOfOrderAreIgnored() {
        var machine = forwarded()
        #expect(machine.responseBody(buffer("x")) == .none)
        #expect(machine.responseEnd(nil, upstreamKeepAlive: true) == .none)
        #expect(machine.responseHead() == .writeResponseHead(keepAlive: true))
        #expect(machine.responseHead() == .none)
        var idle = Machine()
        #expect(idle.responseHead() == .none)
        #expect(idle.responseBody(buffer("x")) == .none)
        #expect(idle.responseEnd(nil, upstreamKeepAlive: true) == .none)
        #expect(idle.isIdle)
    }

    // MARK: upstream acquisition

    @Test func upstreamAcquiredTwiceReleasesTheSecond() {
        var machine = started()
        #expect(machine.upstreamAcquired(first) == .sendHeadAndBuffered([]))
        #expect(machine.upstreamAcquired(first) == .releaseUnusedUpstream)
    }

    @Test func upstreamAcquiredWhenIdleIsReleased() {
        var machine = Machine()
        #expect(machine.upstreamAcquired(first) == .releaseUnusedUpstream)
        #expect(machine.isIdle)
    }

    @Test func acquireFailureAfterCompleteRequestKeepsConnection() {
        var machine = started()
        _ = machine.requestEnd()
        #expect(
            machine.upstreamAcquireFailed(first, .upstreamUnavailable)
                == .respondWithError(.upstreamUnavailable, closeClient: false, abortUpstream: false)
        )
        #expect(machine.isIdle)
    }

    @Test func acquireFailureBeforeRequestCompleteCloses() {
        var machine = started()
        #expect(
            machine.upstreamAcquireFailed(first, .upstreamUnavailable)
                == .respondWithError(.upstreamUnavailable, closeClient: true, abortUpstream: false)
        )
        #expect(!machine.isIdle)
        #expect(machine.requestEnd() == .none)
    }

    @Test func acquireFailureWhenIdleIsIgnored() {
        var machine = Machine()
        #expect(machine.upstreamAcquireFailed(first, .upstreamUnavailable) == .none)
        #expect(machine.isIdle)
    }

    // MARK: upstream failures

    @Test func upstreamFailedBeforeResponseWithCompleteRequestKeepsAlive() {
        var machine = forwarded()
        #expect(
            machine.upstreamFailed(.upstreamTimeout)
                == .respondWithError(.upstreamTimeout, closeClient: false, abortUpstream: true)
        )
        #expect(machine.isIdle)
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 1) == .authorize(second))
        #expect(
            machine.authorizationSucceeded(second, rateLimited: false) == .acquireUpstream(second, sendContinue: false)
        )
    }

    @Test func upstreamFailedBeforeResponseWithIncompleteRequestCloses() {
        var machine = started()
        _ = machine.upstreamAcquired(first)
        #expect(
            machine.upstreamFailed(.upstreamProtocolError)
                == .respondWithError(.upstreamProtocolError, closeClient: true, abortUpstream: true)
        )
        #expect(!machine.isIdle)
    }

    @Test func upstreamFailedWithoutClientKeepAliveCloses() {
        var machine = forwarded(keepAlive: false)
        #expect(
            machine.upstreamFailed(.upstreamTimeout)
                == .respondWithError(.upstreamTimeout, closeClient: true, abortUpstream: true)
        )
    }

    @Test func upstreamFailedAfterResponseStartedClosesClient() {
        var machine = forwarded()
        _ = machine.responseHead()
        _ = machine.responseBody(buffer("partial"))
        #expect(machine.upstreamFailed(.upstreamTimeout) == .closeClient(abortUpstream: true))
        #expect(!machine.isIdle)
        #expect(machine.responseBody(buffer("late")) == .none)
        #expect(machine.responseEnd(nil, upstreamKeepAlive: true) == .none)
    }

    @Test func upstreamFailedWhenIdleIsIgnored() {
        var machine = Machine()
        #expect(machine.upstreamFailed(.upstreamTimeout) == .none)
        #expect(machine.isIdle)
    }

    // MARK: quiescing

    @Test func quiesceWhenIdleCloses() {
        var machine = Machine()
        #expect(machine.quiesce() == .closeClient(abortUpstream: false))
        #expect(machine.quiescing)
        #expect(!machine.isIdle)
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 1) == .none)
        #expect(machine.isClosing)
    }

    @Test func quiesceWhenActiveMakesTheResponseNotKeepAlive() {
        var machine = forwarded()
        #expect(machine.quiesce() == .none)
        #expect(machine.quiescing)
        #expect(machine.responseHead() == .writeResponseHead(keepAlive: false))
        #expect(
            machine.responseEnd(nil, upstreamKeepAlive: true)
                == .finishExchange(trailers: nil, upstreamReusable: true, closeClient: true)
        )
        #expect(!machine.isIdle)
    }

    @Test func quiesceWhenActiveMakesAnErrorResponseClose() {
        var machine = forwarded()
        _ = machine.quiesce()
        #expect(
            machine.upstreamFailed(.upstreamTimeout)
                == .respondWithError(.upstreamTimeout, closeClient: true, abortUpstream: true)
        )
    }

    // MARK: client side

    @Test func clientClosedWithAttachedUpstreamAbortsIt() {
        var machine = forwarded()
        #expect(machine.clientClosed() == .abortUpstream)
        #expect(!machine.isIdle)
        #expect(machine.responseHead() == .none)
    }

    @Test func clientClosedWhileAcquiringLeavesNothingToAbort() {
        var machine = started()
        #expect(machine.clientClosed() == .none)
        // The connection that arrives later goes back to the pool.
        #expect(machine.upstreamAcquired(first) == .releaseUnusedUpstream)
    }

    @Test func clientClosedWhenIdle() {
        var machine = Machine()
        #expect(machine.clientClosed() == .none)
        #expect(!machine.isIdle)
    }

    @Test func requestBodyTimeoutIs408AndCloses() {
        var machine = started()
        _ = machine.upstreamAcquired(first)
        _ = machine.requestBody(buffer("slow"))
        let action = machine.requestBodyTimedOut()
        #expect(action == .respondWithError(.bodyReadTimeout, closeClient: true, abortUpstream: true))
        #expect(GatewayError.bodyReadTimeout.status == 408)
        #expect(!machine.isIdle)
    }

    @Test func requestBodyTimeoutBeforeAttachDoesNotAbort() {
        var machine = started()
        #expect(
            machine.requestBodyTimedOut()
                == .respondWithError(.bodyReadTimeout, closeClient: true, abortUpstream: false)
        )
    }

    @Test func requestBodyTimeoutAfterRequestCompleteIsIgnored() {
        var machine = forwarded()
        #expect(machine.requestBodyTimedOut() == .none)
        var idle = Machine()
        #expect(idle.requestBodyTimedOut() == .none)
    }

    @Test func requestBodyTimeoutAfterResponseStartedClosesClient() {
        var machine = started()
        _ = machine.upstreamAcquired(first)
        _ = machine.responseHead()
        #expect(machine.requestBodyTimedOut() == .closeClient(abortUpstream: true))
    }

    @Test func rejectedHeadWhenIdleRespondsAndCloses() {
        var machine = Machine()
        let error = GatewayError.badRequest("no")
        #expect(machine.requestHeadRejected(error) == .respondWithError(error, closeClient: true, abortUpstream: false))
        #expect(!machine.isIdle)
    }

    @Test func rejectedHeadWhileActiveCloses() {
        var machine = forwarded()
        #expect(machine.requestHeadRejected(.badRequest("no")) == .closeClient(abortUpstream: true))
    }

    @Test func secondHeadWhileActiveFailsClosed() {
        var machine = started()
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 1) == .closeClient(abortUpstream: true))
        #expect(!machine.isIdle)
    }

    @Test func protocolErrorWhenIdleRespondsAndCloses() {
        var machine = Machine()
        let error = GatewayError.headersTooLarge(limit: 1024)
        #expect(machine.clientProtocolError(error) == .respondWithError(error, closeClient: true, abortUpstream: false))
        #expect(machine.clientProtocolError(error) == .none)
    }

    @Test func protocolErrorInBodyRespondsAndCloses() {
        var machine = started()
        _ = machine.upstreamAcquired(first)
        let error = GatewayError.badRequest("bad chunk")
        #expect(machine.clientProtocolError(error) == .respondWithError(error, closeClient: true, abortUpstream: true))
    }

    @Test func protocolErrorAfterResponseStartedCloses() {
        var machine = started()
        _ = machine.upstreamAcquired(first)
        _ = machine.responseHead()
        #expect(machine.clientProtocolError(.badRequest("x")) == .closeClient(abortUpstream: true))
    }
}

@Suite struct ProxyConnectionStateMachineAuthorizationTests {
    @Test func refusedAuthorizationWithCompleteRequestKeepsTheConnection() {
        var machine = Machine()
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 100) == .authorize(first))
        #expect(machine.requestEnd() == .none)
        let error = GatewayError.unauthorized("no")
        #expect(
            machine.authorizationFailed(first, error)
                == .respondWithError(error, closeClient: false, abortUpstream: false)
        )
        #expect(machine.isIdle)
    }

    @Test func refusedAuthorizationWithBodyStillComingCloses() {
        var machine = Machine()
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 100) == .authorize(first))
        #expect(machine.requestBody(buffer("ab")) == .none)
        let error = GatewayError.insufficientScope("admin")
        #expect(
            machine.authorizationFailed(first, error)
                == .respondWithError(error, closeClient: true, abortUpstream: false)
        )
        #expect(!machine.isIdle)
    }

    @Test func bodyBufferedDuringAuthorizationIsSentWithTheHead() {
        var machine = Machine()
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 100) == .authorize(first))
        #expect(machine.requestBody(buffer("ab")) == .none)
        #expect(
            machine.authorizationSucceeded(first, rateLimited: false) == .acquireUpstream(first, sendContinue: false)
        )
        #expect(machine.requestEnd() == .none)
        #expect(machine.upstreamAcquired(first) == .sendHeadAndBuffered([body("ab"), .end]))
    }

    @Test func localEndpointRunsOnceTheBodyIsComplete() {
        var machine = Machine()
        #expect(
            machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 100, destination: .local(bodyLimit: 64))
                == .authorize(first)
        )
        #expect(machine.requestBody(buffer("{}")) == .none)
        #expect(machine.authorizationSucceeded(first, rateLimited: false) == .readLocalBody(sendContinue: false))
        #expect(machine.requestEnd() == .runLocalEndpoint(first, [body("{}")]))
        #expect(machine.localResponseReady(first) == .finishLocal(closeClient: false))
        #expect(machine.isIdle)
        // An upstream connection is never used for a local exchange.
        #expect(machine.upstreamAcquired(first) == .releaseUnusedUpstream)
    }

    @Test func localEndpointBodyOverItsLimitIs413() {
        var machine = Machine()
        #expect(
            machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 1000, destination: .local(bodyLimit: 4))
                == .authorize(first)
        )
        #expect(machine.authorizationSucceeded(first, rateLimited: false) == .readLocalBody(sendContinue: false))
        #expect(
            machine.requestBody(buffer("12345"))
                == .respondWithError(.bodyTooLarge(limit: 4), closeClient: true, abortUpstream: false)
        )
    }

    @Test func lateAuthorizationAfterFailureIsIgnored() {
        var machine = Machine()
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 100) == .authorize(first))
        #expect(
            machine.requestBodyTimedOut()
                == .respondWithError(.bodyReadTimeout, closeClient: true, abortUpstream: false)
        )
        #expect(machine.authorizationSucceeded(first, rateLimited: false) == .none)
        #expect(machine.authorizationFailed(first, .authUnavailable) == .none)
    }
}

@Suite struct ProxyConnectionStateMachineBodylessTests {
    @Test func refusalBeforeTheEndMarkerOfABodylessRequestKeepsTheConnection() {
        var machine = Machine()
        #expect(
            machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 100, bodyExpected: false) == .authorize(first)
        )
        let error = GatewayError.unauthorized("no")
        #expect(
            machine.authorizationFailed(first, error)
                == .respondWithError(error, closeClient: false, abortUpstream: false)
        )
        #expect(machine.isIdle)
        // The parser's end marker of the refused request arrives afterwards and is ignored.
        #expect(machine.requestEnd() == .none)
        #expect(machine.isIdle)
    }

    @Test func refusalBeforeTheEndOfARequestWithABodyCloses() {
        var machine = Machine()
        #expect(
            machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 100, bodyExpected: true) == .authorize(first)
        )
        let error = GatewayError.unauthorized("no")
        #expect(
            machine.authorizationFailed(first, error)
                == .respondWithError(error, closeClient: true, abortUpstream: false)
        )
    }

    /// A refusal that closes the connection schedules the close after its response is
    /// flushed. A pipelined head delivered meanwhile (the pipelining handler hands it over
    /// while that response is written) must not close earlier: that dropped the responses
    /// still waiting for the flush.
    @Test func headArrivingWhileClosingAfterARefusalIsIgnored() {
        var machine = Machine()
        #expect(
            machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 100, bodyExpected: true) == .authorize(first)
        )
        let error = GatewayError.unauthorized("no")
        #expect(
            machine.authorizationFailed(first, error)
                == .respondWithError(error, closeClient: true, abortUpstream: false)
        )
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 100) == .none)
        #expect(machine.requestHeadRejected(.badRequest("no")) == .none)
        #expect(!machine.isIdle)
    }

    @Test func headArrivingWhileClosingAfterAResponseIsIgnored() {
        var machine = forwarded(keepAlive: false)
        #expect(machine.responseHead() == .writeResponseHead(keepAlive: false))
        #expect(
            machine.responseEnd(nil, upstreamKeepAlive: true)
                == .finishExchange(trailers: nil, upstreamReusable: true, closeClient: true)
        )
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 100) == .none)
    }
}

/// Authorization, rate limits and admission as machine states, and the completions of
/// asynchronous steps that arrive after their exchange ended.
@Suite struct ProxyConnectionStateMachineAdmissionTests {
    @Test func exchangesAreNumberedPerConnection() {
        var machine = Machine()
        #expect(machine.currentExchange == nil)
        #expect(
            machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 10, bodyExpected: false) == .authorize(first)
        )
        #expect(machine.currentExchange == first)
        _ = machine.authorizationFailed(first, .unauthorized("no"))
        #expect(machine.currentExchange == nil)
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 10) == .authorize(second))
        #expect(machine.currentExchange == second)
    }

    @Test func rateLimitedRequestAsksTheBucketsThenAcquires() {
        var machine = Machine()
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 10) == .authorize(first))
        #expect(machine.authorizationSucceeded(first, rateLimited: true) == .checkRateLimit(first))
        // Reads stay held; a body part that arrived anyway is buffered, not forwarded.
        #expect(machine.requestBody(buffer("ab")) == .none)
        #expect(machine.rateLimitAdmitted(first) == .acquireUpstream(first, sendContinue: false))
        #expect(machine.upstreamAcquired(first) == .sendHeadAndBuffered([body("ab")]))
    }

    @Test func rateLimitRefusalWithCompleteRequestKeepsTheConnection() {
        var machine = Machine()
        _ = machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 10, bodyExpected: false)
        #expect(machine.authorizationSucceeded(first, rateLimited: true) == .checkRateLimit(first))
        let refusal = GatewayError(status: 429, code: "rate_limited", description: "slow down")
        #expect(
            machine.rateLimitRefused(first, refusal)
                == .respondWithError(refusal, closeClient: false, abortUpstream: false)
        )
        #expect(machine.isIdle)
    }

    @Test func rateLimitRefusalWithBodyStillComingCloses() {
        var machine = Machine()
        _ = machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 10)
        _ = machine.authorizationSucceeded(first, rateLimited: true)
        let refusal = GatewayError(status: 503, code: "rate_limit_unavailable", description: "down")
        #expect(
            machine.rateLimitRefused(first, refusal)
                == .respondWithError(refusal, closeClient: true, abortUpstream: false)
        )
        #expect(machine.isClosing)
    }

    @Test func eventsOutOfTheirPhaseAreDropped() {
        var machine = Machine()
        _ = machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 10)
        // The limiter cannot answer before it was asked, nor the pool before admission.
        #expect(machine.rateLimitAdmitted(first) == .none)
        #expect(machine.rateLimitRefused(first, .authUnavailable) == .none)
        #expect(machine.upstreamAcquired(first) == .releaseUnusedUpstream)
        #expect(machine.upstreamAcquireFailed(first, .upstreamUnavailable) == .none)
        #expect(machine.localResponseReady(first) == .none)
        #expect(machine.authorizationSucceeded(first, rateLimited: true) == .checkRateLimit(first))
        // Authorization was answered: a second answer for it is stale.
        #expect(machine.authorizationSucceeded(first, rateLimited: false) == .none)
        #expect(machine.authorizationFailed(first, .unauthorized("late")) == .none)
        #expect(machine.rateLimitAdmitted(first) == .acquireUpstream(first, sendContinue: false))
        // A refusal racing in after the admission changes nothing.
        #expect(machine.rateLimitRefused(first, .authUnavailable) == .none)
        #expect(machine.rateLimitAdmitted(first) == .none)
        #expect(machine.upstreamAcquired(first) == .sendHeadAndBuffered([]))
    }

    @Test func completionsAfterTheClientClosedAreStale() {
        var machine = Machine()
        _ = machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 10)
        #expect(machine.clientClosed() == .none)
        #expect(machine.authorizationSucceeded(first, rateLimited: true) == .none)
        #expect(machine.authorizationFailed(first, .unauthorized("no")) == .none)
        #expect(machine.rateLimitAdmitted(first) == .none)
        #expect(machine.upstreamAcquired(first) == .releaseUnusedUpstream)
        #expect(machine.isClosing)
    }

    @Test func rateLimitAnswerAfterTheBodyOverflowedIsStale() {
        var machine = Machine()
        _ = machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 3)
        _ = machine.authorizationSucceeded(first, rateLimited: true)
        #expect(
            machine.requestBody(buffer("1234"))
                == .respondWithError(.bodyTooLarge(limit: 3), closeClient: true, abortUpstream: false)
        )
        #expect(machine.rateLimitAdmitted(first) == .none)
        #expect(machine.rateLimitRefused(first, .authUnavailable) == .none)
    }

    @Test func completionsOfThePreviousExchangeDoNotTouchTheNext() {
        var machine = Machine()
        // The first request is refused; the second one is in flight when the first's late
        // answers arrive.
        _ = machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 10, bodyExpected: false)
        _ = machine.authorizationFailed(first, .unauthorized("no"))
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 10) == .authorize(second))
        #expect(machine.authorizationSucceeded(first, rateLimited: false) == .none)
        #expect(machine.authorizationFailed(first, .unauthorized("late")) == .none)
        #expect(
            machine.authorizationSucceeded(second, rateLimited: false) == .acquireUpstream(second, sendContinue: false)
        )
        #expect(machine.upstreamAcquired(first) == .releaseUnusedUpstream)
        #expect(machine.upstreamAcquireFailed(first, .upstreamUnavailable) == .none)
        #expect(machine.requestEnd() == .none)
        #expect(machine.upstreamAcquired(second) == .sendHeadAndBuffered([.end]))
    }

    @Test func localResponseAfterTheClientClosedIsStale() {
        var machine = Machine()
        _ = machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 100, destination: .local(bodyLimit: 64))
        _ = machine.requestEnd()
        #expect(machine.authorizationSucceeded(first, rateLimited: false) == .runLocalEndpoint(first, [.end]))
        #expect(machine.clientClosed() == .none)
        #expect(machine.localResponseReady(first) == .none)
    }

    @Test func localRequestWaitsForItsBodyOnlyAfterAdmission() {
        var machine = Machine()
        _ = machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 100, destination: .local(bodyLimit: 64))
        _ = machine.authorizationSucceeded(first, rateLimited: true)
        // Complete before admission: held until the limiter answers.
        #expect(machine.requestBody(buffer("{}")) == .none)
        #expect(machine.requestEnd() == .none)
        #expect(machine.rateLimitAdmitted(first) == .runLocalEndpoint(first, [body("{}"), .end]))
        #expect(machine.upstreamAcquired(first) == .releaseUnusedUpstream)
        #expect(machine.localResponseReady(first) == .finishLocal(closeClient: false))
        #expect(machine.isIdle)
    }

    @Test func localRequestDeclaringMoreThanItsLimitIsRefusedAtAdmission() {
        var machine = Machine()
        _ = machine.requestHeadAccepted(
            keepAlive: true,
            maxBodyBytes: 1000,
            destination: .local(bodyLimit: 4),
            declaredLength: 5,
            expectsContinue: true
        )
        // No 100 Continue: the refusal comes first, and the unsent body ends the connection.
        #expect(
            machine.authorizationSucceeded(first, rateLimited: false)
                == .respondWithError(.bodyTooLarge(limit: 4), closeClient: true, abortUpstream: false)
        )
    }

    @Test func localRequestWithinItsLimitIsInvitedToSendItsBody() {
        var machine = Machine()
        _ = machine.requestHeadAccepted(
            keepAlive: true,
            maxBodyBytes: 1000,
            destination: .local(bodyLimit: 4),
            declaredLength: 4,
            expectsContinue: true
        )
        #expect(machine.authorizationSucceeded(first, rateLimited: false) == .readLocalBody(sendContinue: true))
        #expect(machine.requestBody(buffer("1234")) == .none)
        #expect(machine.requestEnd() == .runLocalEndpoint(first, [body("1234")]))
    }

    @Test func upstreamRequestGetsTheContinueOnlyOnceAdmitted() {
        var machine = Machine()
        _ = machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 100, declaredLength: 10, expectsContinue: true)
        #expect(machine.authorizationSucceeded(first, rateLimited: true) == .checkRateLimit(first))
        #expect(machine.rateLimitAdmitted(first) == .acquireUpstream(first, sendContinue: true))
    }

    @Test func noContinueForABodyThatAlreadyArrived() {
        var machine = Machine()
        _ = machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 100, declaredLength: 2, expectsContinue: true)
        _ = machine.requestBody(buffer("ab"))
        _ = machine.requestEnd()
        #expect(
            machine.authorizationSucceeded(first, rateLimited: false) == .acquireUpstream(first, sendContinue: false)
        )
    }

    @Test func refusedRequestNeverGetsTheContinue() {
        var machine = Machine()
        _ = machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 100, declaredLength: 2, expectsContinue: true)
        _ = machine.authorizationSucceeded(first, rateLimited: true)
        let refusal = GatewayError(status: 429, code: "rate_limited", description: "slow down")
        #expect(
            machine.rateLimitRefused(first, refusal)
                == .respondWithError(refusal, closeClient: true, abortUpstream: false)
        )
    }
}
