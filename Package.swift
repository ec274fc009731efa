// swift-tools-version:6.2
import PackageDescription

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

let strictSettings: [SwiftSetting] = [
    .treatAllWarnings(as: .error),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "dbaudit-gateway",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "dbaudit-gateway", targets: ["dbaudit-gateway"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", exact: "0.6.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
    ],
    targets: [
        // C libraries: one system-library module each, imported by exactly one Swift module.
        .systemLibrary(name: "CGatewayOpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CGatewayHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),

        .target(
            name: "GatewayCore",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GatewayConfig",
            dependencies: ["GatewayCore", .product(name: "TOMLKit", package: "TOMLKit")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GatewayCrypto",
            dependencies: ["CGatewayOpenSSL"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GatewayTLS",
            dependencies: ["CGatewayOpenSSL", "GatewayCrypto", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GatewayRedis",
            dependencies: [
                "CGatewayHiredis", "GatewayConfig", "GatewayCore", "GatewayTLS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GatewayStore",
            dependencies: [
                "GatewayCore", "GatewayConfig", "GatewayRedis",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GatewayAuth",
            dependencies: [
                "GatewayCore", "GatewayConfig", "GatewayStore", "GatewayCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // The browser pages (OAuth login and consent; later the settings pages): templates,
        // the stylesheet, browser sessions, CSRF, security headers.
        .target(
            name: "GatewayPages",
            dependencies: [
                "GatewayCore", "GatewayConfig", "GatewayStore", "GatewayCrypto", "GatewayAuth", "GatewayOAuth",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GatewayOAuth",
            dependencies: [
                "GatewayCore", "GatewayConfig", "GatewayStore", "GatewayCrypto", "GatewayAuth",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GatewayRateLimit",
            dependencies: [
                "GatewayCore", "GatewayConfig", "GatewayRedis", "GatewayCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // The strict HTTP/1 parser over raw bytes (heads as offsets, chunked decoding, limits).
        .target(
            name: "GatewayHTTP1",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GatewayProxy",
            dependencies: [
                "GatewayCore", "GatewayConfig", "GatewayAuth", "GatewayRateLimit", "GatewayTLS", "GatewayHTTP1",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // The admin listener: /healthz, /readyz, /metrics (Prometheus text), POST /explain.
        .target(
            name: "GatewayAdmin",
            dependencies: [
                "GatewayConfig", "GatewayCore", "GatewayCrypto", "GatewayProxy", "GatewayRedis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GatewayServer",
            dependencies: [
                "GatewayCore", "GatewayConfig", "GatewayProxy", "GatewayAuth", "GatewayStore", "GatewayRedis",
                "GatewayCrypto", "GatewayRateLimit", "GatewayTLS", "GatewayOAuth", "GatewayPages", "GatewayAdmin",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "dbaudit-gateway",
            dependencies: [
                "GatewayCore", "GatewayConfig", "GatewayServer", "GatewayAdmin", "GatewayAuth", "GatewayStore",
                "GatewayOAuth",
                "GatewayCrypto", "GatewayProxy", "GatewayRedis",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),

        .testTarget(
            name: "GatewayCoreTests",
            dependencies: [
                "GatewayCore", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // llhttp (through NIOHTTP1's decoder) as the oracle GatewayHTTP1 is compared with, shared
        // by its tests and the `http1` fuzz target.
        .target(
            name: "GatewayHTTP1Oracle",
            dependencies: [
                "GatewayHTTP1",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Tests/GatewayHTTP1Oracle",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "GatewayHTTP1Tests",
            dependencies: [
                "GatewayHTTP1", "GatewayHTTP1Oracle",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "GatewayConfigTests",
            dependencies: ["GatewayConfig", "GatewayTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(name: "GatewayCryptoTests", dependencies: ["GatewayCrypto"], swiftSettings: strictSettings),
        .testTarget(
            name: "GatewayTLSTests",
            dependencies: [
                "GatewayTLS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // Shared by every test target that needs them: the one manual clock, future and result
        // outcomes, configuration problems.
        .target(
            name: "GatewayTestSupport",
            dependencies: [
                "GatewayConfig", "GatewayCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            path: "Tests/GatewayTestSupport",
            swiftSettings: strictSettings
        ),
        // Shared by the Redis and store tests: a redis-server child process and a loop-bound client.
        .target(
            name: "GatewayRedisTestSupport",
            dependencies: [
                "GatewayRedis", "GatewayConfig", "GatewayCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tests/GatewayRedisTestSupport",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "GatewayRedisTests",
            dependencies: [
                "GatewayTestSupport",
                "GatewayRedis", "GatewayConfig", "GatewayCore", "GatewayRedisTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "GatewayStoreTests",
            dependencies: [
                "GatewayTestSupport",
                "GatewayStore", "GatewayRedis", "GatewayConfig", "GatewayRedisTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "GatewayRateLimitTests",
            dependencies: [
                "GatewayTestSupport",
                "GatewayRateLimit", "GatewayConfig", "GatewayCore", "GatewayRedis", "GatewayRedisTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "GatewayProxyTests",
            dependencies: [
                "GatewayTestSupport",
                "GatewayProxy", "GatewayCore", "GatewayConfig", "GatewayRateLimit", "GatewayAuth", "GatewayHTTP1",
                // The harness builds the handlers the server would: an in-process store, a hasher.
                "GatewayStore", "GatewayCrypto",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "GatewayServerTests",
            dependencies: [
                "GatewayTestSupport",
                "GatewayServer", "GatewayProxy", "GatewayConfig", "GatewayCore", "GatewayAuth",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "GatewayPagesTests",
            dependencies: [
                "GatewayTestSupport",
                "GatewayPages", "GatewayCore", "GatewayConfig", "GatewayStore", "GatewayCrypto", "GatewayAuth",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "GatewayAuthTests",
            dependencies: [
                "GatewayTestSupport",
                "GatewayAuth", "GatewayCore", "GatewayConfig", "GatewayStore", "GatewayCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "GatewayOAuthTests",
            dependencies: [
                "GatewayRedisTestSupport",
                "GatewayOAuth", "GatewayCore", "GatewayConfig", "GatewayStore", "GatewayCrypto",
                "GatewayRedis",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)

// The libFuzzer targets (docs/fuzzing.md, `make fuzz`): one executable, the parser picked by
// DBGW_FUZZ_TARGET at run time. Declared only when DBGW_FUZZ=1, because it must be built with
// `-sanitize=fuzzer` (libFuzzer provides `main`): a plain `swift build`/`swift test` never sees it.
if getenv("DBGW_FUZZ") != nil {
    package.targets.append(
        .executableTarget(
            name: "GatewayFuzz",
            dependencies: [
                "GatewayAuth", "GatewayConfig", "GatewayHTTP1", "GatewayHTTP1Oracle", "GatewayOAuth", "GatewayPages",
                "GatewayProxy", "GatewayRedis",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Fuzz/Sources/GatewayFuzz",
            swiftSettings: strictSettings
        )
    )
    package.products.append(.executable(name: "GatewayFuzz", targets: ["GatewayFuzz"]))
}
