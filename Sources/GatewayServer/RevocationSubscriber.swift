import GatewayConfig
import GatewayRedis
import GatewayStore
import Logging
import NIOCore

/// The process's one Redis pub/sub subscription: it listens on the revocation channel and
/// tells every event loop to drop a revoked credential from its cache, so a key revoked on
/// any gateway instance stops working everywhere within a round trip.
///
/// The connection is a `RedisSubscription`: plain `SUBSCRIBE` on one Redis or the primary
/// Sentinel names (following `+switch-master`), `SSUBSCRIBE` on the primary serving the
/// channel's slot on a cluster (following the slot when it moves; `SUBSCRIBE` before Redis
/// 7). After every (re)subscription it tells the caches that revocations published while it
/// was away were missed. Lives on one event loop; `start` and `stop` hop onto it.
final class RevocationSubscriber: Sendable {
    private let subscription: RedisSubscription

    init(
        eventLoop: any EventLoop,
        settings: RedisSettings,
        connector: @escaping RedisConnector,
        events: RedisNodeEvents? = nil,
        logger: Logger,
        onRevoke: @escaping @Sendable (String) -> Void,
        onRevokeTokenID: @escaping @Sendable (String, Int64) -> Void = { _, _ in },
        onRevokeOpaqueToken: @escaping @Sendable (String) -> Void = { _ in },
        onRevokeSessions: @escaping @Sendable (SessionRevocation) -> Void = { _ in },
        onResubscribed: @escaping @Sendable () -> Void
    ) {
        self.subscription = RedisSubscription(
            eventLoop: eventLoop,
            settings: settings,
            channel: RedisCredentialStore.eventsChannel(keyPrefix: settings.storeKeyPrefix),
            connector: connector,
            events: events,
            logger: logger,
            onMessage: { payload in
                let text = String(decoding: payload.prefix(256), as: UTF8.self)
                if let hash = RevocationMessage.apiKeyHash(from: text) {
                    onRevoke(hash)
                } else if let token = RevocationMessage.tokenID(from: text) {
                    onRevokeTokenID(token.id, token.expiresAt)
                } else if let hash = RevocationMessage.opaqueAccessTokenHash(from: text) {
                    onRevokeOpaqueToken(hash)
                } else if let session = RevocationMessage.sessionID(from: text) {
                    onRevokeSessions(.session(session.id, until: session.until))
                } else if let user = RevocationMessage.userID(from: text) {
                    onRevokeSessions(.user(user.id, issuedUpTo: user.issuedUpTo, until: user.until))
                } else {
                    logger.warning("ignored malformed revocation message")
                }
            },
            onSubscribed: { subscribed in
                if !subscribed.first {
                    logger.notice(
                        "revocation channel resubscribed; local credential caches flushed",
                        metadata: [
                            "redis_node": "\(subscribed.node)",
                            "redis_pubsub": "\(subscribed.sharded ? "sharded" : "plain")",
                        ]
                    )
                }
                // Anything revoked while we were not listening is unknown: start clean.
                onResubscribed()
            }
        )
    }

    func start() {
        self.subscription.start()
    }

    func stop() {
        self.subscription.stop()
    }
}
