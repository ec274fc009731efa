import GatewayAuth
import GatewayConfig
import GatewayCore
import GatewayServer
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle
import Testing

/// A JWKS fetcher that records the URLs asked for and answers 503 (keys are not the point).
private final class RecordingFetcher: Sendable {
    private let urls = NIOLockedValueBox<[String]>([])
    private let loop: any EventLoop

    init(loop: any EventLoop) { self.loop = loop }

    var fetched: [String] { self.urls.withLockedValue { $0 } }

    var fetcher: HTTPFetcher {
        { url, _, _, _ in
            self.urls.withLockedValue { $0.append(url) }
            return self.loop.makeSucceededFuture(HTTPFetchResponse(status: 503, cacheControl: nil, body: []))
        }
    }
}

private func issuer(_ name: String) -> IssuerSettings {
    IssuerSettings(
        issuer: "https://\(name).example",
        keySource: .jwksURL("https://\(name).example/jwks"),
        audiences: ["a"]
    )
}

private let quiet = Logger(label: "jwks-service-tests", factory: { _ in SwiftLogNoOpLogHandler() })

private func settings(_ issuers: [IssuerSettings]) -> JWKSRefresherService.Settings {
    JWKSRefresherService.Settings(issuers: issuers, logger: quiet) { _, _ in
        MultiThreadedEventLoopGroup.singleton.next().makeSucceededVoidFuture()
    }
}

@Suite struct JWKSRefresherServiceTests {
    @Test func refreshesOnlyWhileTheGroupRunsAndReplacesTheRefresherOnUpdate() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let recorder = RecordingFetcher(loop: loop)
        let service = JWKSRefresherService(eventLoop: loop, fetcher: recorder.fetcher, clock: .system)
        await service.update(settings([issuer("first")]))
        // Not running yet: nothing is fetched in the background.
        #expect(try await service.fetchCount(issuer: "https://first.example") == 0)

        let group = ServiceGroup(services: [service], gracefulShutdownSignals: [], logger: quiet)
        let running = Task { try await group.run() }
        try await waitUntil("the first issuer's keys are fetched") {
            recorder.fetched.contains("https://first.example/jwks")
        }

        // A reload with other issuers: a refresher for the new set starts at once.
        await service.update(settings([issuer("second")]))
        try await waitUntil("the second issuer's keys are fetched") {
            recorder.fetched.contains("https://second.example/jwks")
        }
        #expect(try await service.fetchCount(issuer: "https://first.example") == 0)

        await group.triggerGracefulShutdown()
        try await running.value
        // Stopped with the group: a later update starts nothing.
        await service.update(settings([issuer("third")]))
        #expect(try await service.fetchCount(issuer: "https://third.example") == 0)
        #expect(!recorder.fetched.contains("https://third.example/jwks"))
    }

    @Test func refetchWithoutIssuersIsRefused() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let service = JWKSRefresherService(
            eventLoop: loop,
            fetcher: RecordingFetcher(loop: loop).fetcher,
            clock: .system
        )
        await service.update(nil)
        await #expect(throws: JWKSRefresher.RefetchRefused.self) {
            try await service.refetch(issuer: "https://first.example", from: loop).get()
        }
    }
}
