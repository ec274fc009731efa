/// Whether a drain's quiesce (`ChannelShouldQuiesceEvent`) reaches a client connection's HTTP
/// handlers now, or once its first request head arrives. A value owned by the connection's
/// `ClientFrontHandler`, on its channel's event loop.
///
/// Quiescing closes an idle connection at once. That is safe for a keep-alive connection
/// that already served a request (a client retries an idempotent request when a reused
/// connection closes before any response byte, RFC 9112 §9.3.1), but not for a connection
/// accepted a moment before the listener closed: its client has sent, or is about to send,
/// its first request and would see the connection fail. Such a connection is therefore
/// quiesced once its first request head arrives: that request is served and the connection
/// closes after the response. One that never sends anything is closed by its idle timeout
/// or by the drain timeout.
struct FirstRequestDrainState {
    private var servedAHead = false
    private var holding = false

    /// The drain began. Returns whether to pass the quiesce on now.
    mutating func quiesceRequested() -> Bool {
        if self.servedAHead { return true }
        self.holding = true
        return false
    }

    /// A request head arrived. Returns whether a held quiesce must now be delivered.
    mutating func requestHeadReceived() -> Bool {
        self.servedAHead = true
        defer { self.holding = false }
        return self.holding
    }
}
