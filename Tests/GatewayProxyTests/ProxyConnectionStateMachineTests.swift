import GatewayCore
import NIOCore
import NIOHTTP1
import Testing

@testable import GatewayProxy

private typealias Machine = ProxyConnectionStateMachine

private func buffer(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

private func body(_ text: String) -> HTTPClientRequestPart { .body(.byteBuffer(buffer(text))) }

/// A machine with an accepted request head.
private func started(keepAlive: Bool = true, maxBodyBytes: Int64 = 100) -> Machine {
    var machine = Machine()
    #expect(machine.requestHeadAccepted(keepAlive: keepAlive, maxBodyBytes: maxBodyBytes) == .authorize)
    #expect(machine.authorized(destination: .upstream, localBodyLimit: 64) == .acquireUpstream)
    return machine
}

/// A machine whose request (head and end) was sent upstream on an attached connection.
private func forwarded(keepAlive: Bool = true) -> Machine {
    var machine = started(keepAlive: keepAlive)
    #expect(machine.requestEnd(nil) == .none)
    #expect(machine.upstreamAcquired() == .sendHeadAndBuffered([.end(nil)]))
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
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 10) == .authorize)
        #expect(machine.authorized(destination: .upstream, localBodyLimit: 64) == .acquireUpstream)
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

        // The connection carries a second exchange.
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 10) == .authorize)
        #expect(machine.authorized(destination: .upstream, localBodyLimit: 64) == .acquireUpstream)
        #expect(machine.requestEnd(nil) == .none)
        #expect(machine.upstreamAcquired() == .sendHeadAndBuffered([.end(nil)]))
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
        let trailers: HTTPHeaders = ["X-Checksum": "abc"]
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
        let trailers: HTTPHeaders = ["X-T": "1"]
        #expect(machine.requestEnd(trailers) == .none)
        #expect(!machine.isAwaitingRequestBody)
        #expect(machine.upstreamAcquired() == .sendHeadAndBuffered([body("abc"), body("def"), .end(trailers)]))
    }

    @Test func partialBodyBeforeAttachThenForwarded() {
        var machine = started()
        #expect(machine.requestBody(buffer("abc")) == .none)
        #expect(machine.upstreamAcquired() == .sendHeadAndBuffered([body("abc")]))
        #expect(machine.requestBody(buffer("def")) == .forwardToUpstream(body("def")))
        #expect(machine.requestEnd(nil) == .forwardToUpstream(.end(nil)))
        // Parts after the end are ignored.
        #expect(machine.requestBody(buffer("x")) == .none)
        #expect(machine.requestEnd(nil) == .none)
    }

    @Test func nothingBufferedGivesEmptySend() {
        var machine = started()
        #expect(machine.upstreamAcquired() == .sendHeadAndBuffered([]))
        #expect(machine.requestEnd(nil) == .forwardToUpstream(.end(nil)))
    }

    @Test func bodyAtTheLimitIsAccepted() {
        var machine = started(maxBodyBytes: 10)
        #expect(machine.requestBody(buffer("12345")) == .none)
        #expect(machine.requestBody(buffer("67890")) == .none)
        #expect(machine.requestEnd(nil) == .none)
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
        #expect(machine.requestEnd(nil) == .none)
        #expect(machine.upstreamAcquired() == .releaseUnusedUpstream)
    }

    @Test func bodyOverLimitAfterAttachAbortsUpstream() {
        var machine = started(maxBodyBytes: 4)
        _ = machine.upstreamAcquired()
        let action = machine.requestBody(buffer("12345"))
        #expect(action == .respondWithError(.bodyTooLarge(limit: 4), closeClient: true, abortUpstream: true))
        if case .respondWithError(let error, _, _) = action {
            #expect(error.status == 413)
            #expect(error.code == "request_too_large")
        }
    }

    @Test func bodyOverLimitAfterResponseStartedClosesClient() {
        var machine = started(maxBodyBytes: 4)
        _ = machine.upstreamAcquired()
        #expect(machine.responseHead() == .writeResponseHead(keepAlive: false))
        #expect(machine.requestBody(buffer("12345")) == .closeClient(abortUpstream: true))
    }

    // MARK: early responses

    @Test func responseBeforeRequestCompleteEndsTheConnection() {
        var machine = started()
        _ = machine.upstreamAcquired()
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
        #expect(machine.requestEnd(nil) == .none)
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
        #expect(machine.upstreamAcquired() == .sendHeadAndBuffered([]))
        #expect(machine.upstreamAcquired() == .releaseUnusedUpstream)
    }

    @Test func upstreamAcquiredWhenIdleIsReleased() {
        var machine = Machine()
        #expect(machine.upstreamAcquired() == .releaseUnusedUpstream)
        #expect(machine.isIdle)
    }

    @Test func acquireFailureAfterCompleteRequestKeepsConnection() {
        var machine = started()
        _ = machine.requestEnd(nil)
        #expect(
            machine.upstreamAcquireFailed(.upstreamUnavailable)
                == .respondWithError(.upstreamUnavailable, closeClient: false, abortUpstream: false)
        )
        #expect(machine.isIdle)
    }

    @Test func acquireFailureBeforeRequestCompleteCloses() {
        var machine = started()
        #expect(
            machine.upstreamAcquireFailed(.upstreamUnavailable)
                == .respondWithError(.upstreamUnavailable, closeClient: true, abortUpstream: false)
        )
        #expect(!machine.isIdle)
        #expect(machine.requestEnd(nil) == .none)
    }

    @Test func acquireFailureWhenIdleIsIgnored() {
        var machine = Machine()
        #expect(machine.upstreamAcquireFailed(.upstreamUnavailable) == .none)
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
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 1) == .authorize)
        #expect(machine.authorized(destination: .upstream, localBodyLimit: 64) == .acquireUpstream)
    }

    @Test func upstreamFailedBeforeResponseWithIncompleteRequestCloses() {
        var machine = started()
        _ = machine.upstreamAcquired()
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
        #expect(machine.upstreamAcquired() == .releaseUnusedUpstream)
    }

    @Test func clientClosedWhenIdle() {
        var machine = Machine()
        #expect(machine.clientClosed() == .none)
        #expect(!machine.isIdle)
    }

    @Test func requestBodyTimeoutIs408AndCloses() {
        var machine = started()
        _ = machine.upstreamAcquired()
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
        _ = machine.upstreamAcquired()
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
        _ = machine.upstreamAcquired()
        let error = GatewayError.badRequest("bad chunk")
        #expect(machine.clientProtocolError(error) == .respondWithError(error, closeClient: true, abortUpstream: true))
    }

    @Test func protocolErrorAfterResponseStartedCloses() {
        var machine = started()
        _ = machine.upstreamAcquired()
        _ = machine.responseHead()
        #expect(machine.clientProtocolError(.badRequest("x")) == .closeClient(abortUpstream: true))
    }
}

@Suite struct ProxyConnectionStateMachineAuthorizationTests {
    @Test func refusedAuthorizationWithCompleteRequestKeepsTheConnection() {
        var machine = Machine()
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 100) == .authorize)
        #expect(machine.requestEnd(nil) == .none)
        let error = GatewayError.unauthorized("no")
        #expect(
            machine.authorizationFailed(error) == .respondWithError(error, closeClient: false, abortUpstream: false)
        )
        #expect(machine.isIdle)
    }

    @Test func refusedAuthorizationWithBodyStillComingCloses() {
        var machine = Machine()
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 100) == .authorize)
        #expect(machine.requestBody(buffer("ab")) == .none)
        let error = GatewayError.insufficientScope("admin")
        #expect(machine.authorizationFailed(error) == .respondWithError(error, closeClient: true, abortUpstream: false))
        #expect(!machine.isIdle)
    }

    @Test func bodyBufferedDuringAuthorizationIsSentWithTheHead() {
        var machine = Machine()
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 100) == .authorize)
        #expect(machine.requestBody(buffer("ab")) == .none)
        #expect(machine.authorized(destination: .upstream, localBodyLimit: 64) == .acquireUpstream)
        #expect(machine.requestEnd(nil) == .none)
        #expect(machine.upstreamAcquired() == .sendHeadAndBuffered([body("ab"), .end(nil)]))
    }

    @Test func localEndpointRunsOnceTheBodyIsComplete() {
        var machine = Machine()
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 100) == .authorize)
        #expect(machine.requestBody(buffer("{}")) == .none)
        #expect(machine.authorized(destination: .local, localBodyLimit: 64) == .none)
        #expect(machine.requestEnd(nil) == .runLocalEndpoint([body("{}")]))
        #expect(machine.localResponseReady() == .finishLocal(closeClient: false))
        #expect(machine.isIdle)
        // An upstream connection is never used for a local exchange.
        #expect(machine.upstreamAcquired() == .releaseUnusedUpstream)
    }

    @Test func localEndpointBodyOverItsLimitIs413() {
        var machine = Machine()
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 1000) == .authorize)
        #expect(machine.authorized(destination: .local, localBodyLimit: 4) == .none)
        #expect(
            machine.requestBody(buffer("12345"))
                == .respondWithError(.bodyTooLarge(limit: 4), closeClient: true, abortUpstream: false)
        )
    }

    @Test func lateAuthorizationAfterFailureIsIgnored() {
        var machine = Machine()
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 100) == .authorize)
        #expect(
            machine.requestBodyTimedOut()
                == .respondWithError(.bodyReadTimeout, closeClient: true, abortUpstream: false)
        )
        #expect(machine.authorized(destination: .upstream, localBodyLimit: 64) == .none)
    }
}

@Suite struct ProxyConnectionStateMachineBodylessTests {
    @Test func refusalBeforeTheEndMarkerOfABodylessRequestKeepsTheConnection() {
        var machine = Machine()
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 100, bodyExpected: false) == .authorize)
        let error = GatewayError.unauthorized("no")
        #expect(
            machine.authorizationFailed(error) == .respondWithError(error, closeClient: false, abortUpstream: false)
        )
        #expect(machine.isIdle)
        // The parser's end marker of the refused request arrives afterwards and is ignored.
        #expect(machine.requestEnd(nil) == .none)
        #expect(machine.isIdle)
    }

    @Test func refusalBeforeTheEndOfARequestWithABodyCloses() {
        var machine = Machine()
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 100, bodyExpected: true) == .authorize)
        let error = GatewayError.unauthorized("no")
        #expect(machine.authorizationFailed(error) == .respondWithError(error, closeClient: true, abortUpstream: false))
    }

    /// A refusal that closes the connection schedules the close after its response is
    /// flushed. A pipelined head delivered meanwhile (the pipelining handler hands it over
    /// while that response is written) must not close earlier: that dropped the responses
    /// still waiting for the flush.
    @Test func headArrivingWhileClosingAfterARefusalIsIgnored() {
        var machine = Machine()
        #expect(machine.requestHeadAccepted(keepAlive: true, maxBodyBytes: 100, bodyExpected: true) == .authorize)
        let error = GatewayError.unauthorized("no")
        #expect(machine.authorizationFailed(error) == .respondWithError(error, closeClient: true, abortUpstream: false))
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
