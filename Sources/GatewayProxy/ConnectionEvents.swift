import NIOCore

/// Outbound user events the `ProxyHandler` sends down its pipeline so the byte-level
/// `ClientFrontHandler` (which sits before the HTTP decoder and cannot see
/// requests) knows which timeout applies.
package enum ConnectionPhaseEvent: Sendable {
    /// The connection waits for the next request: the idle timeout runs until a byte
    /// arrives, then the header timeout.
    case awaitingRequest
    /// A complete request head arrived: no head timeout applies until the next
    /// `awaitingRequest`.
    case requestHeadReceived
}
