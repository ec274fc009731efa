import Foundation
import GatewayConfig
import GatewayRedis
import GatewayRedisTestSupport
import Logging
import NIOCore
import Testing

/// Keeps every message logged, for the tests that count log lines.
private final class CapturedLog: LogHandler, @unchecked Sendable {
    private let lock = NSLock()
    private var messages: [String] = []
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        self.lock.withLock { self.messages.append(event.message.description) }
    }

    var lines: [String] { self.lock.withLock { self.messages } }
    var logger: Logger { Logger(label: "test", factory: { _ in self }) }
}

/// What `SUBSCRIBE`/`SSUBSCRIBE` confirmations and messages a subscription hears.
private final class Heard: Sendable {
    let messages = LockedList<String>()
    let subscriptions = LockedList<RedisSubscription.Subscribed>()
}

private let channel = "dbgw:{gw}:events"

/// Revocation pub/sub on a real one-node cluster: `RedisSubscription` subscribes with
/// `SSUBSCRIBE` and `RedisClient.publish` sends `SPUBLISH`; with both commands renamed away (a
/// Redis before 7 answers the same `ERR unknown command`) both fall back to plain pub/sub and
/// the fallback is logged once; when the channel's slot leaves the node (`sunsubscribe`) the
/// subscription comes back by itself.
@Suite(.timeLimit(.minutes(1)))
struct ShardedPubSubTests {
    private func subscribe(
        _ settings: RedisSettings,
        on loop: any EventLoop,
        events: RedisNodeEvents?,
        heard: Heard
    ) -> RedisSubscription {
        let subscription = RedisSubscription(
            eventLoop: loop,
            settings: settings,
            channel: channel,
            connector: posixRedisConnector,
            events: events,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
            onMessage: { heard.messages.append(String(decoding: $0, as: UTF8.self)) },
            onSubscribed: { heard.subscriptions.append($0) }
        )
        subscription.start()
        return subscription
    }

    private func integer(_ reply: RESPValue, at index: Int) -> Int64? {
        guard case .array(let items) = reply, items.count > index, case .integer(let value) = items[index] else {
            return nil
        }
        return value
    }

    @Test func shardedSubscriptionAndPublication() async throws {
        let server = try await startSingleNodeCluster()
        defer { server.stop() }
        try await withEventLoop { loop in
            let admin = LoopClient(redisSettings(server), on: loop)
            let heard = Heard()
            let subscription = self.subscribe(redisClusterSettings(server), on: loop, events: nil, heard: heard)
            defer { subscription.stop() }
            #expect(await eventually { heard.subscriptions.values.count == 1 })
            #expect(heard.subscriptions.values.first?.sharded == true)
            #expect(heard.subscriptions.values.first?.node == server.endpoint)
            #expect(self.integer(try await admin.send(["PUBSUB", "SHARDNUMSUB", channel]), at: 1) == 1)
            #expect(self.integer(try await admin.send(["PUBSUB", "NUMSUB", channel]), at: 1) == 0)

            let publisher = LoopClient(redisClusterSettings(server), on: loop)
            #expect(try await publisher.run { $0.publish(channel: channel, message: "revoke one") } == .integer(1))
            #expect(await eventually { heard.messages.values == ["revoke one"] })
            let stats = try await admin.send(["INFO", "commandstats"])
            guard case .bulkString(let text) = stats else { throw RedisTestFailure("INFO: \(stats)") }
            #expect(String(decoding: text, as: UTF8.self).contains("cmdstat_spublish:calls=1,"))
            #expect(!String(decoding: text, as: UTF8.self).contains("cmdstat_publish:"))

            // The slot leaves the node (Redis sends `sunsubscribe`), then comes back: the
            // subscription is made again, and reported (the caches flush on it).
            let slot = String(ClusterSlot.of(channel))
            _ = try await admin.send(["CLUSTER", "DELSLOTS", slot])
            _ = try await admin.send(["CLUSTER", "ADDSLOTS", slot])
            #expect(await eventually(timeout: .seconds(10)) { heard.subscriptions.values.count == 2 })
            #expect(heard.subscriptions.values.last?.first == false)
            #expect(try await publisher.run { $0.publish(channel: channel, message: "revoke two") } == .integer(1))
            #expect(await eventually { heard.messages.values == ["revoke one", "revoke two"] })
            await publisher.close()
            await admin.close()
        }
    }

    @Test func withoutShardedPubSubBothSidesFallBackToPlainAndSayItOnce() async throws {
        let server = try await startSingleNodeCluster(
            arguments: ["--rename-command", "SPUBLISH", "", "--rename-command", "SSUBSCRIBE", ""]
        )
        defer { server.stop() }
        let log = CapturedLog()
        let events = RedisNodeEvents(logger: log.logger)
        try await withEventLoop { loop in
            let admin = LoopClient(redisSettings(server), on: loop)
            let heard = Heard()
            let subscription = self.subscribe(redisClusterSettings(server), on: loop, events: events, heard: heard)
            defer { subscription.stop() }
            #expect(await eventually { heard.subscriptions.values.count == 1 })
            #expect(heard.subscriptions.values.first?.sharded == false)
            #expect(self.integer(try await admin.send(["PUBSUB", "NUMSUB", channel]), at: 1) == 1)

            let publisher = LoopClient(redisClusterSettings(server), on: loop, events: events)
            for number in 1...2 {
                let reply = try await publisher.run { $0.publish(channel: channel, message: "revoke \(number)") }
                #expect(reply == .integer(1))
            }
            #expect(await eventually { heard.messages.values == ["revoke 1", "revoke 2"] })
            await publisher.close()
            let notes = log.lines.filter { $0.contains("does not know sharded pub/sub") }
            #expect(notes.count == 1, "\(log.lines)")
            await admin.close()
        }
    }

    /// After a failover the subscription may be waiting out a back-off of up to 1 s: a slot
    /// map naming other primaries (read by any loop's client) tells it to try now.
    @Test func aChangeOfClusterPrimariesIsAnnouncedOnce() {
        let events = RedisNodeEvents(logger: nil)
        let heard = LockedList<RedisNodeEvents.Notice>()
        let id = events.register { heard.append($0) }
        defer { events.unregister(id) }
        let a = RedisSettings.Endpoint.tcp(host: "127.0.0.1", port: 7000)
        let b = RedisSettings.Endpoint.tcp(host: "127.0.0.1", port: 7001)
        let promoted = RedisSettings.Endpoint.tcp(host: "127.0.0.1", port: 7004)
        events.clusterMapped([a, b])
        events.clusterMapped([b, a])  // the same primaries in another order: no news
        #expect(heard.values == [.clusterPrimariesChanged])
        events.clusterMapped([a, promoted])
        #expect(heard.values == [.clusterPrimariesChanged, .clusterPrimariesChanged])
        #expect(events.clusterNodes == [a, promoted])
    }

    @Test func scriptPublishingFollowsTheTopologyAndTheSlot() async throws {
        let server = try await startSingleNodeCluster()
        defer { server.stop() }
        try await withEventLoop { loop in
            let cluster = LoopClient(redisClusterSettings(server), on: loop)
            let single = LoopClient(redisSettings(server), on: loop)
            let (sharded, elsewhere, plain) = try await loop.submit {
                (
                    cluster.client.scriptPublishCommand(channel: channel, keys: ["dbgw:{gw}:oauth-at:x"]),
                    cluster.client.scriptPublishCommand(channel: channel, keys: ["dbgw:oauth-at:x"]),
                    single.client.scriptPublishCommand(channel: "dbgw:events", keys: ["dbgw:oauth-at:x"])
                )
            }.get()
            #expect(sharded == "SPUBLISH")
            #expect(elsewhere == "")
            #expect(plain == "PUBLISH")
            await cluster.close()
            await single.close()
        }
    }
}
