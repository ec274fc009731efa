package import NIOCore

extension Duration {
    /// The same span as a NIO `TimeAmount` (configuration holds `Duration`s; timers take
    /// `TimeAmount`s). The one conversion every module uses.
    package var timeAmount: TimeAmount {
        let (seconds, attoseconds) = self.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
