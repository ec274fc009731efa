import Foundation
import GatewayTestSupport
import Testing

@testable import GatewayConfig

/// The single problem of `text`, checked to name `file` and `key`.
private func onlyProblem(
    _ text: String,
    key: String,
    line: Int?,
    messageContains fragment: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let found = configurationProblems(text, file: "/etc/dbaudit/gateway.conf")
    #expect(found.count == 1, "\(found)", sourceLocation: sourceLocation)
    guard let problem = found.first else { return }
    #expect(problem.file == "/etc/dbaudit/gateway.conf", sourceLocation: sourceLocation)
    #expect(problem.key == key, sourceLocation: sourceLocation)
    #expect(problem.line == line, sourceLocation: sourceLocation)
    #expect(problem.message.contains(fragment), "\(problem.message)", sourceLocation: sourceLocation)
    // The rendered text carries all three, as an operator sees it.
    let rendered = ConfigurationError(problems: found).description
    #expect(rendered.contains("/etc/dbaudit/gateway.conf"), sourceLocation: sourceLocation)
    #expect(rendered.contains(key), sourceLocation: sourceLocation)
    if let line {
        #expect(rendered.contains("gateway.conf:\(line):"), "\(rendered)", sourceLocation: sourceLocation)
    }
}

private let upstreamOnly = """
    [upstream]
    url = "http://127.0.0.1:9000"

    """

@Suite struct ConfigurationLoaderValidFileTests {
    static let fullFile = """
        # dbaudit gateway
        [server]
        listen = ["127.0.0.1:8081", "[::1]:8443"]
        event_loops = 4
        max_connections = 500
        max_header_bytes = "16KiB"
        max_body_bytes = 2048
        header_timeout = "5s"
        body_timeout = "750ms"
        idle_timeout = "2m"
        drain_timeout = "1h"
        unmatched_routes = "authenticate"

        [upstream]
        url = "http://backend.internal:9000/"
        connect_timeout = "1500ms"
        response_timeout = "45s"
        max_idle_connections_per_loop = 16
        idle_timeout = "90s"
        preserve_host = true
        forward_method_override = true

        [logging]
        level = "debug"
        format = "text"
        access_log = false
        """

    @Test func fullFileParsesToExpectedValues() throws {
        let configuration = try ConfigurationLoader.parse(text: Self.fullFile, file: "gateway.conf")

        #expect(
            configuration.server.listen == [
                ListenAddress(host: "127.0.0.1", port: 8081), ListenAddress(host: "::1", port: 8443),
            ]
        )
        #expect(configuration.server.eventLoops == 4)
        #expect(configuration.server.maxConnections == 500)
        #expect(configuration.server.maxHeaderBytes == 16_384)
        #expect(configuration.server.maxBodyBytes == 2048)
        #expect(configuration.server.headerTimeout == .seconds(5))
        #expect(configuration.server.bodyTimeout == .milliseconds(750))
        #expect(configuration.server.idleTimeout == .seconds(120))
        #expect(configuration.server.drainTimeout == .seconds(3600))
        #expect(configuration.server.unmatchedRoutes == .authenticate)

        #expect(configuration.upstream.scheme == "http")
        #expect(configuration.upstream.host == "backend.internal")
        #expect(configuration.upstream.port == 9000)
        #expect(configuration.upstream.connectTimeout == .milliseconds(1500))
        #expect(configuration.upstream.responseTimeout == .seconds(45))
        #expect(configuration.upstream.maxIdleConnectionsPerLoop == 16)
        #expect(configuration.upstream.idleTimeout == .seconds(90))
        #expect(configuration.upstream.preserveHost == true)
        #expect(configuration.upstream.forwardMethodOverride == true)
        #expect(configuration.upstream.authority == "backend.internal:9000")

        #expect(configuration.logging.level == .debug)
        #expect(configuration.logging.format == .text)
        #expect(configuration.logging.accessLog == false)
    }

    @Test func defaultsWhenOnlyUpstreamURLIsGiven() throws {
        let configuration = try ConfigurationLoader.parse(text: upstreamOnly, file: "gateway.conf")

        #expect(configuration.server.listen == [ListenAddress(host: "0.0.0.0", port: 8080)])
        #expect(configuration.server.eventLoops == 0)
        #expect(configuration.server.maxConnections == 10_000)
        #expect(configuration.server.maxHeaderBytes == 32 * 1024)
        #expect(configuration.server.maxBodyBytes == 10 * 1024 * 1024)
        #expect(configuration.server.headerTimeout == .seconds(10))
        #expect(configuration.server.bodyTimeout == .seconds(30))
        #expect(configuration.server.idleTimeout == .seconds(60))
        #expect(configuration.server.drainTimeout == .seconds(30))
        #expect(configuration.server.unmatchedRoutes == .deny)

        #expect(configuration.upstream.host == "127.0.0.1")
        #expect(configuration.upstream.port == 9000)
        #expect(configuration.upstream.connectTimeout == .seconds(2))
        #expect(configuration.upstream.responseTimeout == .seconds(30))
        #expect(configuration.upstream.maxIdleConnectionsPerLoop == 256)
        #expect(configuration.upstream.idleTimeout == .seconds(60))
        #expect(configuration.upstream.preserveHost == false)
        #expect(configuration.upstream.forwardMethodOverride == false)

        #expect(configuration.logging.level == .info)
        #expect(configuration.logging.format == .json)
        #expect(configuration.logging.accessLog == true)

        #expect(configuration == GatewayConfiguration(upstream: UpstreamSettings(host: "127.0.0.1", port: 9000)))
    }

    @Test func emptySectionsKeepDefaults() throws {
        let text = "[server]\n[logging]\n" + upstreamOnly
        let configuration = try ConfigurationLoader.parse(text: text, file: "gateway.conf")
        #expect(configuration == GatewayConfiguration(upstream: UpstreamSettings(host: "127.0.0.1", port: 9000)))
    }

    @Test func sizesAcceptIntegersAndUnitStrings() throws {
        let text = """
            [server]
            max_header_bytes = 1024
            max_body_bytes = "1GiB"
            """ + "\n" + upstreamOnly
        let configuration = try ConfigurationLoader.parse(text: text, file: "gateway.conf")
        #expect(configuration.server.maxHeaderBytes == 1024)
        #expect(configuration.server.maxBodyBytes == 1 << 30)
    }

    @Test func rangeBoundariesAreInclusive() throws {
        let text = """
            [server]
            event_loops = 1024
            max_connections = 1
            max_header_bytes = "1MiB"
            max_body_bytes = 0
            header_timeout = "24h"

            [upstream]
            url = "http://h:1"
            max_idle_connections_per_loop = 0
            """
        let configuration = try ConfigurationLoader.parse(text: text, file: "gateway.conf")
        #expect(configuration.server.eventLoops == 1024)
        #expect(configuration.server.maxConnections == 1)
        #expect(configuration.server.maxHeaderBytes == 1 << 20)
        #expect(configuration.server.maxBodyBytes == 0)
        #expect(configuration.server.headerTimeout == .seconds(86_400))
        #expect(configuration.upstream.maxIdleConnectionsPerLoop == 0)
    }

    @Test(arguments: LoggingSettings.Level.allCases)
    func everyLoggingLevelIsAccepted(_ level: LoggingSettings.Level) throws {
        let text = upstreamOnly + "[logging]\nlevel = \"\(level.rawValue)\"\n"
        #expect(try ConfigurationLoader.parse(text: text, file: "f").logging.level == level)
    }
}

@Suite struct ConfigurationLoaderProblemTests {
    // MARK: wrong types

    @Test func integerGivenAsString() {
        onlyProblem(
            "[server]\nmax_connections = \"many\"\n" + upstreamOnly,
            key: "server.max_connections",
            line: 2,
            messageContains: "must be an integer"
        )
    }

    @Test func integerGivenAsFloat() {
        onlyProblem(
            "[server]\n\nevent_loops = 2.5\n" + upstreamOnly,
            key: "server.event_loops",
            line: 3,
            messageContains: "must be an integer"
        )
    }

    @Test func boolGivenAsString() {
        onlyProblem(
            upstreamOnly + "preserve_host = \"yes\"\n",
            key: "upstream.preserve_host",
            line: 3,
            messageContains: "true or false"
        )
    }

    @Test func durationGivenAsInteger() {
        onlyProblem(
            "[server]\nheader_timeout = 10\n" + upstreamOnly,
            key: "server.header_timeout",
            line: 2,
            messageContains: "duration"
        )
    }

    @Test func sizeGivenAsBool() {
        onlyProblem(
            "[server]\nmax_body_bytes = true\n" + upstreamOnly,
            key: "server.max_body_bytes",
            line: 2,
            messageContains: "byte count"
        )
    }

    @Test func listenGivenAsString() {
        onlyProblem(
            "[server]\nlisten = \"0.0.0.0:80\"\n" + upstreamOnly,
            key: "server.listen",
            line: 2,
            messageContains: "array of strings"
        )
    }

    @Test func listenWithNonStringElement() {
        onlyProblem(
            "[server]\nlisten = [\"0.0.0.0:80\", 81]\n" + upstreamOnly,
            key: "server.listen",
            line: 2,
            messageContains: "array of strings"
        )
    }

    @Test func urlGivenAsInteger() {
        onlyProblem("[upstream]\nurl = 9000\n", key: "upstream.url", line: 2, messageContains: "must be a string")
    }

    @Test func sectionGivenAsValue() {
        onlyProblem("server = 5\n" + upstreamOnly, key: "server", line: 1, messageContains: "must be a table")
    }

    // MARK: out-of-range integers

    @Test(arguments: [
        ("event_loops = 1025", "server.event_loops", "between 0 and 1024"),
        ("event_loops = -1", "server.event_loops", "between 0 and 1024"),
        ("max_connections = 0", "server.max_connections", "between 1 and 1000000"),
        ("max_connections = 1000001", "server.max_connections", "between 1 and 1000000"),
        ("max_header_bytes = 1023", "server.max_header_bytes", "between 1024 and 1048576"),
        ("max_header_bytes = \"2MiB\"", "server.max_header_bytes", "between 1024 and 1048576"),
        ("max_body_bytes = -1", "server.max_body_bytes", "between 0 and 1099511627776"),
        ("max_body_bytes = \"1025GiB\"", "server.max_body_bytes", "between 0 and 1099511627776"),
    ])
    func serverIntegerOutOfRange(_ assignment: String, _ key: String, _ message: String) {
        onlyProblem("\n[server]\n" + assignment + "\n" + upstreamOnly, key: key, line: 3, messageContains: message)
    }

    @Test func upstreamIntegerOutOfRange() {
        onlyProblem(
            upstreamOnly + "max_idle_connections_per_loop = 100001\n",
            key: "upstream.max_idle_connections_per_loop",
            line: 3,
            messageContains: "between 0 and 100000"
        )
    }

    // MARK: bad durations and sizes

    @Test(arguments: ["10", "5 s", "0s", "25h", "1.5s", "10sec", ""])
    func badServerDuration(_ value: String) {
        onlyProblem(
            "[server]\nlisten = [\"0.0.0.0:1\"]\nbody_timeout = \"\(value)\"\n" + upstreamOnly,
            key: "server.body_timeout",
            line: 3,
            messageContains: "must be a duration"
        )
    }

    @Test(arguments: ["connect_timeout", "response_timeout", "idle_timeout"])
    func badUpstreamDuration(_ key: String) {
        onlyProblem(
            upstreamOnly + "\(key) = \"0s\"\n",
            key: "upstream.\(key)",
            line: 3,
            messageContains: "must be a duration"
        )
    }

    @Test(arguments: ["10MB", "10 MiB", "1.5KiB", "99999999999GiB"])
    func badSize(_ value: String) {
        onlyProblem(
            "[server]\nmax_body_bytes = \"\(value)\"\n" + upstreamOnly,
            key: "server.max_body_bytes",
            line: 2,
            messageContains: "64KiB"
        )
    }

    // MARK: listen addresses

    @Test func badListenAddress() {
        onlyProblem(
            "[server]\nlisten = [\"0.0.0.0:8080\", \"0.0.0.0:65536\"]\n" + upstreamOnly,
            key: "server.listen",
            line: 2,
            messageContains: "\"0.0.0.0:65536\": invalid port"
        )
    }

    @Test func listenAddressWithoutPort() {
        onlyProblem(
            "[server]\nlisten = [\"localhost\"]\n" + upstreamOnly,
            key: "server.listen",
            line: 2,
            messageContains: "port is required"
        )
    }

    @Test func duplicateListenAddress() {
        onlyProblem(
            "[server]\nlisten = [\"127.0.0.1:8080\", \"[::1]:8080\", \"127.0.0.1:08080\"]\n" + upstreamOnly,
            key: "server.listen",
            line: 2,
            messageContains: "listed twice"
        )
    }

    @Test func emptyListenList() {
        onlyProblem(
            "[server]\nlisten = []\n" + upstreamOnly,
            key: "server.listen",
            line: 2,
            messageContains: "at least one address"
        )
    }

    // MARK: upstream url

    @Test(arguments: [
        ("ftp://backend:443", "must start with http:// or https://"),
        ("http://user:pw@backend", "credentials"),
        ("http://backend/v1", "no path"),
        ("http://backend:9000/v1?x=1", "no path"),
        ("http://backend:70000", "invalid port"),
    ])
    func badUpstreamURL(_ url: String, _ message: String) {
        onlyProblem(
            "# upstream\n[upstream]\nurl = \"\(url)\"\n",
            key: "upstream.url",
            line: 3,
            messageContains: message
        )
    }

    @Test func missingUpstreamURL() {
        onlyProblem("[upstream]\npreserve_host = true\n", key: "upstream.url", line: 1, messageContains: "is required")
    }

    // MARK: logging

    @Test func badLoggingLevel() {
        onlyProblem(
            upstreamOnly + "[logging]\nlevel = \"verbose\"\n",
            key: "logging.level",
            line: 4,
            messageContains: "must be one of trace, debug, info, notice, warning, error, critical"
        )
    }

    @Test func loggingLevelIsCaseSensitive() {
        onlyProblem(
            upstreamOnly + "[logging]\nlevel = \"INFO\"\n",
            key: "logging.level",
            line: 4,
            messageContains: "must be one of"
        )
    }

    @Test func badLoggingFormat() {
        onlyProblem(
            upstreamOnly + "[logging]\nformat = \"xml\"\n",
            key: "logging.format",
            line: 4,
            messageContains: "\"json\" or \"text\""
        )
    }

    @Test func badAccessLogType() {
        onlyProblem(
            upstreamOnly + "[logging]\naccess_log = 1\n",
            key: "logging.access_log",
            line: 4,
            messageContains: "true or false"
        )
    }

    @Test func badUnmatchedRoutesPolicy() {
        onlyProblem(
            "[server]\nunmatched_routes = \"allow\"\n" + upstreamOnly,
            key: "server.unmatched_routes",
            line: 2,
            messageContains: "\"deny\" or \"authenticate\""
        )
    }

    // MARK: unknown keys and sections

    @Test func unknownKeyInSection() {
        onlyProblem(
            "[server]\nlisten = [\"0.0.0.0:1\"]\nmax_body = 5\n" + upstreamOnly,
            key: "server.max_body",
            line: 3,
            messageContains: "unknown key"
        )
    }

    @Test func unknownKeyNamesTheKnownOnes() {
        let found = configurationProblems(upstreamOnly + "timeout = \"5s\"\n")
        #expect(found.count == 1)
        #expect(found.first?.key == "upstream.timeout")
        #expect(found.first?.line == 3)
        #expect(found.first?.message.contains("connect_timeout") == true)
        #expect(found.first?.message.contains("url") == true)
    }

    @Test func unknownSection() {
        onlyProblem(
            upstreamOnly + "\n[database]\nhost = \"x\"\n",
            key: "database",
            line: 4,
            messageContains: "unknown key"
        )
    }

    @Test func unknownTopLevelKey() {
        onlyProblem("debug = true\n" + upstreamOnly, key: "debug", line: 1, messageContains: "unknown key")
    }

    // MARK: structure

    @Test func missingUpstreamSection() {
        let found = configurationProblems("[server]\nmax_connections = 10\n")
        #expect(found.count == 1)
        #expect(found.first?.key == "upstream")
        #expect(found.first?.file == "gateway.conf")
        #expect(found.first?.message.contains("[upstream] section is required") == true)
    }

    @Test func emptyFileNeedsUpstream() {
        let found = configurationProblems("")
        #expect(found.map(\.key) == ["upstream"])
    }

    @Test func tomlSyntaxErrorReportsItsLine() {
        let text = "[server]\nmax_connections = 10\nevent_loops = = 4\n" + upstreamOnly
        let found = configurationProblems(text, file: "bad.conf")
        #expect(found.count == 1)
        #expect(found.first?.file == "bad.conf")
        #expect(found.first?.line == 3)
        #expect(found.first?.key == "")
        #expect(found.first?.message.hasPrefix("TOML syntax error") == true)
    }

    @Test func unterminatedStringReportsItsLine() {
        let found = configurationProblems("[upstream]\n\n\nurl = \"http://x\n")
        #expect(found.count == 1)
        #expect(found.first?.line == 4)
        #expect(found.first?.message.contains("TOML syntax error") == true)
    }

    @Test func duplicateKeyIsASyntaxError() {
        let found = configurationProblems("[upstream]\nurl = \"http://a\"\nurl = \"http://b\"\n")
        #expect(found.count == 1)
        #expect(found.first?.line == 3)
    }

    @Test func severalProblemsAreAllReported() {
        let text = """
            [server]
            listen = ["0.0.0.0:8080", "0.0.0.0:8080"]
            max_body_bytes = "10MB"
            header_timeout = "10"
            bogus = 1

            [upstream]
            url = "http://127.0.0.1:9000"
            connect_timeout = "5 s"

            [logging]
            level = "loud"
            format = "yaml"

            [extra]
            """
        let found = configurationProblems(text, file: "multi.conf")
        let byKey = Dictionary(found.map { ($0.key, $0.line) }, uniquingKeysWith: { first, _ in first })
        #expect(found.count == 8, "\(found)")
        #expect(byKey["server.listen"] == 2)
        #expect(byKey["server.max_body_bytes"] == 3)
        #expect(byKey["server.header_timeout"] == 4)
        #expect(byKey["server.bogus"] == 5)
        #expect(byKey["upstream.connect_timeout"] == 9)
        #expect(byKey["logging.level"] == 12)
        #expect(byKey["logging.format"] == 13)
        #expect(byKey["extra"] == 15)
        #expect(found.allSatisfy { $0.file == "multi.conf" })
        let rendered = ConfigurationError(problems: found).description
        #expect(rendered.split(separator: "\n").count == 8)
        #expect(rendered.contains("multi.conf:3: server.max_body_bytes: "))
    }

    @Test func problemsWithoutUpstreamAreStillCollected() {
        let found = configurationProblems("[server]\nmax_connections = 0\n[logging]\nformat = \"xml\"\n")
        #expect(Set(found.map(\.key)) == ["server.max_connections", "logging.format", "upstream"])
    }

    /// A bad `url` must not hide the other `[upstream]` problems: all are reported at once.
    @Test func badURLDoesNotHideOtherUpstreamProblems() {
        let found = configurationProblems("[upstream]\nurl = \"ftp://x\"\nconnect_timeout = \"0s\"\n")
        #expect(found.contains { $0.key == "upstream.url" })
        #expect(found.contains { $0.key == "upstream.connect_timeout" })
    }
}

@Suite struct ConfigurationErrorDescriptionTests {
    @Test func describesFileLineKeyAndMessage() {
        let error = ConfigurationError(problems: [
            .init(file: "g.conf", line: 7, key: "server.max_body_bytes", message: "must be between"),
            .init(file: "g.conf", line: nil, key: "", message: "file does not exist"),
            .init(file: "g.conf", line: nil, key: "upstream", message: "is required"),
        ])
        #expect(
            error.description == """
                g.conf:7: server.max_body_bytes: must be between
                g.conf: file does not exist
                g.conf: upstream: is required
                """
        )
    }
}

@Suite struct ConfigurationLoaderFileTests {
    private func temporaryPath(_ name: String) -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "gateway-config-tests-\(UUID().uuidString)"
        )
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory.appendingPathComponent(name).path
    }

    @Test func missingFileReportsDoesNotExist() {
        let path = self.temporaryPath("absent.conf")
        do {
            _ = try ConfigurationLoader.load(path: path)
            Issue.record("loading a missing file succeeded")
        } catch {
            #expect(error.problems.count == 1)
            #expect(error.problems.first?.file == path)
            #expect(error.problems.first?.message.contains("does not exist") == true)
            #expect(error.description.contains(path))
        }
    }

    @Test func loadsAFileAndNamesItInProblems() throws {
        let path = self.temporaryPath("gateway.conf")
        try Data(upstreamOnly.utf8).write(to: URL(fileURLWithPath: path))
        let configuration = try ConfigurationLoader.load(path: path)
        #expect(configuration.upstream.port == 9000)

        try Data((upstreamOnly + "response_timeout = \"5 s\"\n").utf8).write(to: URL(fileURLWithPath: path))
        do {
            _ = try ConfigurationLoader.load(path: path)
            Issue.record("bad file loaded")
        } catch {
            #expect(error.problems.count == 1)
            #expect(error.problems.first?.file == path)
            #expect(error.problems.first?.key == "upstream.response_timeout")
            #expect(error.problems.first?.line == 3)
        }
    }

    @Test func directoryCannotBeRead() {
        let path = self.temporaryPath("dir.conf")
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        do {
            _ = try ConfigurationLoader.load(path: path)
            Issue.record("loading a directory succeeded")
        } catch {
            #expect(error.problems.first?.message.contains("cannot be read") == true)
        }
    }

    @Test func nonUTF8FileIsRefused() throws {
        let path = self.temporaryPath("latin1.conf")
        try Data([0x5B, 0x75, 0x70, 0xFF, 0xFE, 0x5D, 0x0A]).write(to: URL(fileURLWithPath: path))
        do {
            _ = try ConfigurationLoader.load(path: path)
            Issue.record("non-UTF-8 file loaded")
        } catch {
            #expect(error.problems.first?.message.contains("UTF-8") == true)
        }
    }

    @Test func oversizedFileIsRefused() throws {
        let path = self.temporaryPath("huge.conf")
        var text = upstreamOnly
        text += String(repeating: "# padding padding padding padding padding padding padding padding\n", count: 17_000)
        #expect(text.utf8.count > ConfigurationLoader.maximumFileBytes)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        do {
            _ = try ConfigurationLoader.load(path: path)
            Issue.record("oversized file loaded")
        } catch {
            #expect(error.problems.first?.message.contains("larger than") == true)
        }
    }
}

@Suite struct RenderedTOMLTests {
    private func roundTrip(_ configuration: GatewayConfiguration) throws -> GatewayConfiguration {
        try ConfigurationLoader.parse(text: configuration.renderedTOML(), file: "rendered.conf")
    }

    @Test func defaultConfigurationRoundTrips() throws {
        let configuration = GatewayConfiguration(upstream: UpstreamSettings(host: "127.0.0.1", port: 9000))
        #expect(try self.roundTrip(configuration) == configuration)
    }

    @Test func everyKeyIsRendered() {
        let text = GatewayConfiguration(upstream: UpstreamSettings(host: "h", port: 1)).renderedTOML()
        for key in [
            "listen", "event_loops", "max_connections", "max_header_bytes", "max_body_bytes", "header_timeout",
            "body_timeout", "idle_timeout", "drain_timeout", "unmatched_routes", "url", "connect_timeout",
            "response_timeout",
            "max_idle_connections_per_loop", "preserve_host", "level", "format", "access_log",
        ] {
            #expect(text.contains("\n\(key) = "), "\(key) missing")
        }
    }

    @Test func customConfigurationRoundTrips() throws {
        var upstream = UpstreamSettings(host: "::1", port: 80)
        upstream.connectTimeout = .milliseconds(1500)
        upstream.responseTimeout = .seconds(90)
        upstream.maxIdleConnectionsPerLoop = 0
        upstream.idleTimeout = .seconds(7200)
        upstream.preserveHost = true
        var configuration = GatewayConfiguration(upstream: upstream)
        configuration.server.listen = [
            ListenAddress(host: "::", port: 8443), ListenAddress(host: "10.0.0.1", port: 80),
        ]
        configuration.server.eventLoops = 3
        configuration.server.maxConnections = 1
        configuration.server.maxHeaderBytes = 1024
        configuration.server.maxBodyBytes = 1 << 40
        configuration.server.headerTimeout = .milliseconds(1)
        configuration.server.bodyTimeout = .seconds(61)
        configuration.server.idleTimeout = .seconds(86_400)
        configuration.server.drainTimeout = .milliseconds(86_399_999)
        configuration.server.unmatchedRoutes = .authenticate
        configuration.logging.level = .critical
        configuration.logging.format = .text
        configuration.logging.accessLog = false

        let parsed = try self.roundTrip(configuration)
        #expect(parsed == configuration)
        #expect(parsed.upstream.url == "http://[::1]")
    }

    @Test func parsedFullFileRoundTrips() throws {
        let configuration = try ConfigurationLoader.parse(
            text: ConfigurationLoaderValidFileTests.fullFile,
            file: "gateway.conf"
        )
        #expect(try self.roundTrip(configuration) == configuration)
    }
}

/// Regressions found by the `config` fuzz target (docs/fuzzing.md).
@Suite struct ConfigurationLoaderFuzzRegressionTests {
    /// The fuzzer's input: a backtick where the header's key starts made toml++ assert, which
    /// aborts debug and release builds alike. Now a syntax error on its line.
    @Test func aTableHeaderWhoseKeyStartsWithAnOddCharacterIsASyntaxError() throws {
        let text = """
            [`uth.jwt]
            issuer = "i"
            [[auth.jwaccess_token_ttlt.signing_keys]]
            kid = "a"
            private_key_file = "/nonexisTent/dbew-key.pem"
            active = true

            """
        #expect(throws: ConfigurationError.self) { try ConfigurationLoader.parse(text: text, file: "f.conf") }
        do {
            _ = try ConfigurationLoader.parse(text: text, file: "f.conf")
        } catch {
            #expect(error.problems.map(\.line) == [1])
        }
    }

    /// The fuzzer's second input: `}` where an array expects a value reached toml++'s value
    /// reader, whose assertion aborted `check-config` (and `run`, and a reload), in debug and
    /// release builds alike. Now a syntax error on its line, before TOMLKit sees the text
    /// (TOMLPreflightTests has the variations).
    @Test func aBraceWhereAnArrayExpectsAValueIsASyntaxError() {
        let found = configurationProblems("[upstream]\nurl = \"http://127.0.0.1:9000\"\n[server]\nlisten = [}\n")
        #expect(
            found == [
                .init(
                    file: "gateway.conf",
                    line: 4,
                    key: "",
                    message: "TOML syntax error: `}` cannot close the `[` opened on line 4"
                )
            ]
        )
    }
}
