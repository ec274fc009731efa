import ServiceLifecycle

/// The subscriber runs as a service of the `ServiceGroup`: subscribed while the group
/// runs, unsubscribed on graceful shutdown (before the gateway drains).
extension RevocationSubscriber: Service {
    func run() async throws {
        self.start()
        // Returns on graceful shutdown; throws when the group is cancelled. Either way: stop.
        try? await gracefulShutdown()
        self.stop()
    }
}
