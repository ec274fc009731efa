import GatewayConfig
import GatewayRedis
import GatewayStore
import Logging
import NIOCore

/// The process's one Redis pub/sub connection: it subscribes to the revocation channel
/// and tells every event loop to drop a revoked credential from its cache, so a key
/// revoked on any gateway instance stops working everywhere within a round trip.
///
/// It reconnects by itself (50 ms back-off doubling to 1 s) and, after every
/// (re)connection, tells the caches that revocations published while it was away were
/// missed. It finds its node like every other connection (`RedisNodeOpener`: in Sentinel
/// mode the primary, checked with `ROLE`), and a `+switch-master` or another connection's
/// recovery heard through `events` moves it at once. Lives on one event loop; `start` and
/// `stop` hop onto it.
final class RevocationSubscriber: Sendable {
    private let eventLoop: any EventLoop
    private let settings: RedisSettings
    private let connector: RedisConnector
    private let events: RedisNodeEvents?
    private let logger: Logger
    private let onRevoke: @Sendable (String) -> Void
    private let onRevokeTokenID: @Sendable (String, Int64) -> Void
    private let onRevokeOpaqueToken: @Sendable (String) -> Void
    /// Ended sessions and revoked users (`revoke session`, `revoke user`).
    private let onRevokeSessions: @Sendable (SessionRevocation) -> Void
    private let onResubscribed: @Sendable () -> Void
    private let state: NIOLoopBoundBox<State>

    private struct State {
        var channel: (any Channel)?
        var stopped = false
        var delay: TimeAmount = .zero
        var connectedOnce = false
        var connecting = false
        var retry: Scheduled<Void>?
        var opener: RedisNodeOpener?
        var listener: UInt64?
    }

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
        self.onRevokeSessions = onRevokeSessions
        self.onRevokeOpaqueToken = onRevokeOpaqueToken
        self.onRevokeTokenID = onRevokeTokenID
        self.eventLoop = eventLoop
        self.settings = settings
        self.connector = connector
        self.events = events
        self.logger = logger
        self.onRevoke = onRevoke
        self.onResubscribed = onResubscribed
        self.state = NIOLoopBoundBox.makeBoxSendingValue(State(), eventLoop: eventLoop)
    }

    var channelName: String { RedisCredentialStore.eventsChannel(keyPrefix: self.settings.storeKeyPrefix) }

    func start() {
        self.eventLoop.execute {
            self.state.value.opener = RedisNodeOpener(
                eventLoop: self.eventLoop,
                settings: self.settings,
                connector: self.connector,
                events: self.events
            )
            self.state.value.listener = self.events?.register { notice in
                self.eventLoop.execute { self.heard(notice) }
            }
            self.connect()
        }
    }

    func stop() {
        self.eventLoop.execute {
            self.state.value.stopped = true
            self.state.value.retry?.cancel()
            self.state.value.channel?.close(promise: nil)
            if let listener = self.state.value.listener { self.events?.unregister(listener) }
        }
    }

    /// A new primary: leave the old one now; another connection recovered: stop waiting.
    private func heard(_ notice: RedisNodeEvents.Notice) {
        guard !self.state.value.stopped else { return }
        if case .primarySwitched(let primary) = notice, self.state.value.opener?.primarySwitched(to: primary) == true {
            self.state.value.channel?.close(promise: nil)
            return
        }
        if self.state.value.channel == nil, !self.state.value.connecting {
            self.state.value.retry?.cancel()
            self.state.value.delay = .zero
            self.connect()
        }
    }

    private func connect() {
        guard !self.state.value.stopped, !self.state.value.connecting, let opener = self.state.value.opener else {
            return
        }
        self.state.value.connecting = true
        let onRevoke = self.onRevoke
        let onRevokeTokenID = self.onRevokeTokenID
        let onRevokeOpaqueToken = self.onRevokeOpaqueToken
        let onRevokeSessions = self.onRevokeSessions
        let logger = self.logger
        let handler: @Sendable (RESPValue) -> Void = { message in
            guard case .array(let parts) = message, parts.count == 3,
                case .bulkString(let kind) = parts[0], kind == Array("message".utf8),
                case .bulkString(let payload) = parts[2]
            else { return }
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
        }
        opener.open { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(RedisChannelHandler(onPush: handler))
            }
        }.assumeIsolated().flatMap { opened in
            self.subscribe(on: opened.channel).map {
                self.events?.answered(by: opened.endpoint)
                return opened.channel
            }
        }.whenComplete { result in
            self.state.value.connecting = false
            switch result {
            case .success(let channel):
                let wasConnected = self.state.value.connectedOnce
                self.state.value.channel = channel
                self.state.value.delay = .zero
                self.state.value.connectedOnce = true
                if wasConnected {
                    self.logger.notice("revocation channel resubscribed; local credential caches flushed")
                }
                // Anything revoked while we were not listening is unknown: start clean.
                self.onResubscribed()
                channel.closeFuture.whenComplete { _ in
                    self.state.value.channel = nil
                    self.state.value.opener?.connectionLost()
                    self.retry()
                }
            case .failure:
                self.retry()
            }
        }
    }

    private func retry() {
        guard !self.state.value.stopped else { return }
        let delay = self.state.value.delay == .zero ? .milliseconds(50) : min(self.state.value.delay * 2, .seconds(1))
        self.state.value.delay = delay
        self.state.value.retry = self.eventLoop.scheduleTask(in: delay) { self.connect() }
    }

    /// On a connection the opener authenticated (and checked the role of).
    private func subscribe(on channel: any Channel) -> EventLoopFuture<Void> {
        let steps = [["SUBSCRIBE", self.channelName]]
        var chain = channel.eventLoop.makeSucceededVoidFuture()
        for step in steps {
            chain = chain.flatMap {
                let promise = channel.eventLoop.makePromise(of: RESPValue.self)
                let bytes = RESPCommand.encode(step)
                channel.writeAndFlush(
                    RedisRequest(bytes: channel.allocator.buffer(bytes: bytes), promise: promise),
                    promise: nil
                )
                return promise.futureResult.flatMapThrowing { reply in
                    if case .error(let message) = reply {
                        throw RedisClientError.server(message)
                    }
                }
            }
        }
        return chain.flatMapError { error in
            channel.close(promise: nil)
            return channel.eventLoop.makeFailedFuture(error)
        }
    }
}
