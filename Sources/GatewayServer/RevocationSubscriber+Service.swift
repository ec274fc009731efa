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

/// The watcher runs as a service of the `ServiceGroup`: it follows the sentinels while the
/// group runs and stops on graceful shutdown.
extension SentinelWatcher: Service {
    func run() async throws {
        self.start()
        try? await gracefulShutdown()
        self.stop()
    }
}
