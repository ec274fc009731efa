import GatewayProxy
import NIOCore
import NIOEmbedded
import Testing

@testable import GatewayServer

/// `FirstRequestDrainGate` on an EmbeddedChannel: a connection that has not sent its first
/// request is quiesced only once that request's head arrives; one that has, at once.
@Suite("FirstRequestDrainGate")
struct FirstRequestDrainGateTests {
    @Test("a quiesce before the first request waits for its head")
    func heldUntilTheFirstHead() throws {
        let recorder = QuiesceRecorder()
        let channel = EmbeddedChannel(handlers: [FirstRequestDrainGate(), recorder])

        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        channel.embeddedEventLoop.run()
        #expect(recorder.quiesced == 0)

        channel.pipeline.triggerUserOutboundEvent(ConnectionPhaseEvent.requestHeadReceived, promise: nil)
        channel.embeddedEventLoop.run()
        #expect(recorder.quiesced == 1)
        _ = try channel.finish()
    }

    @Test("a quiesce after a request passes at once")
    func passesAfterARequest() throws {
        let recorder = QuiesceRecorder()
        let channel = EmbeddedChannel(handlers: [FirstRequestDrainGate(), recorder])
        channel.pipeline.triggerUserOutboundEvent(ConnectionPhaseEvent.requestHeadReceived, promise: nil)
        channel.embeddedEventLoop.run()
        #expect(recorder.quiesced == 0)

        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())

        #expect(recorder.quiesced == 1)
        // A later head does not deliver a second one.
        channel.pipeline.triggerUserOutboundEvent(ConnectionPhaseEvent.requestHeadReceived, promise: nil)
        channel.embeddedEventLoop.run()
        #expect(recorder.quiesced == 1)
        _ = try channel.finish()
    }
}
