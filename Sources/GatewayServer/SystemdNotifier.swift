package import Logging
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// The sd_notify protocol, spoken directly (no libsystemd): each message is one datagram of
/// `KEY=value` lines sent to the AF_UNIX socket named by `$NOTIFY_SOCKET` (a path, or an
/// abstract-namespace name when it starts with `@`). See sd_notify(3).
///
/// Every method is a no-op when `$NOTIFY_SOCKET` is unset (not started by systemd, or a unit
/// that is not `Type=notify`), so the gateway behaves the same outside systemd. A failed
/// send is logged (once until a send succeeds again) and otherwise ignored: the gateway
/// never stops serving because its supervisor went away.
///
/// The watchdog (`WatchdogSec=` in the unit) is read from `$WATCHDOG_USEC`, honoured only
/// when `$WATCHDOG_PID` is unset or this process's pid; `withWatchdog` pings every half of
/// that interval while its body runs.
package final class SystemdNotifier: Sendable {
    /// The socket address bytes: a path (NUL-terminated on send) or, for `@name`, a leading
    /// NUL followed by the name. Nil when notifications are off.
    private let address: [UInt8]?
    private let isAbstract: Bool
    /// Half of `$WATCHDOG_USEC`, or nil when the watchdog is off for this process.
    package let watchdogInterval: Duration?
    private let logger: Logger?
    private let lastSendFailed = NIOLockedValueBox(false)

    /// Whether `$NOTIFY_SOCKET` named a usable socket.
    package var isEnabled: Bool { self.address != nil }

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from `environment`.
    package init(environment: [String: String], pid: Int32 = getpid(), logger: Logger? = nil) {
        self.logger = logger
        var address: [UInt8]? = nil
        var isAbstract = false
        if let socket = environment["NOTIFY_SOCKET"], !socket.isEmpty {
            let bytes = Array(socket.utf8)
            // sun_path is 108 bytes: a path needs its NUL, an abstract name does not.
            let capacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path)
            if bytes.first == UInt8(ascii: "/"), bytes.count < capacity, !bytes.contains(0) {
                address = bytes
            } else if bytes.first == UInt8(ascii: "@"), bytes.count <= capacity {
                address = [0] + bytes.dropFirst()
                isAbstract = true
            } else {
                logger?.warning(
                    "NOTIFY_SOCKET is not an absolute path or @abstract name that fits sun_path; systemd notifications are off",
                    metadata: ["notify_socket": "\(socket)"]
                )
            }
        }
        self.address = address
        self.isAbstract = isAbstract

        var interval: Duration? = nil
        if address != nil, let text = environment["WATCHDOG_USEC"], let usec = UInt64(text), usec > 0 {
            let forUs = environment["WATCHDOG_PID"].map { Int32($0) == pid } ?? true
            if forUs {
                interval = .microseconds(Int64(clamping: usec / 2))
            }
        }
        self.watchdogInterval = interval
    }

    /// Reads the process environment.
    package convenience init(logger: Logger? = nil) {
        var environment: [String: String] = [:]
        for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            if let value = getenv(name) {
                environment[name] = String(cString: value)
            }
        }
        self.init(environment: environment, logger: logger)
    }

    // MARK: messages

    /// `READY=1`: start-up (or a reload) finished; the service is serving.
    package func ready(status: String? = nil) {
        self.send(["READY=1"] + Self.statusLine(status))
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (CLOCK_MONOTONIC, as systemd >= 253 requires
    /// for `Type=notify-reload`); follow with `ready(status:)` when the reload is over.
    package func reloading(status: String? = nil) {
        self.send(["RELOADING=1", "MONOTONIC_USEC=\(Self.monotonicMicroseconds())"] + Self.statusLine(status))
    }

    /// `STOPPING=1`: graceful shutdown began.
    package func stopping(status: String? = nil) {
        self.send(["STOPPING=1"] + Self.statusLine(status))
    }

    /// `STATUS=`: one line a person reads in `systemctl status`.
    package func status(_ text: String) {
        self.send(Self.statusLine(text))
    }

    /// `WATCHDOG=1`: the service is alive.
    package func watchdog() {
        self.send(["WATCHDOG=1"])
    }

    // MARK: watchdog

    /// Runs `body` while a child task sends `WATCHDOG=1` every `watchdogInterval` (first
    /// at once). With `probe`, each ping waits for the probe to return first, so a wedged
    /// component (an event loop that stopped running tasks) stops the pings and systemd
    /// restarts the service. The pinging task is cancelled and awaited before this returns,
    /// so none outlives `body`. Without a watchdog this just runs `body`.
    package func withWatchdog(
        probe: (@Sendable () async -> Void)? = nil,
        body: () async throws -> Void
    ) async throws {
        guard let interval = self.watchdogInterval else {
            try await body()
            return
        }
        let outcome: Result<Void, any Error> = await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    if let probe { await probe() }
                    if Task.isCancelled { break }
                    self.watchdog()
                    try? await Task.sleep(for: interval)
                }
            }
            let outcome: Result<Void, any Error>
            do {
                try await body()
                outcome = .success(())
            } catch {
                outcome = .failure(error)
            }
            group.cancelAll()
            return outcome
        }
        try outcome.get()
    }

    // MARK: internals

    private static func statusLine(_ text: String?) -> [String] {
        guard let text else { return [] }
        // One datagram line per key: newlines in a status would start a new assignment.
        let line = String(text.map { $0.isNewline ? " " : $0 })
        return ["STATUS=\(line)"]
    }

    /// CLOCK_MONOTONIC in microseconds (the clock systemd compares MONOTONIC_USEC with).
    package static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
    }

    private func send(_ assignments: [String]) {
        guard let address = self.address, !assignments.isEmpty else { return }
        let message = assignments.joined(separator: "\n")
        let error = Self.sendDatagram(message, to: address, isAbstract: self.isAbstract)
        let wasFailing = self.lastSendFailed.withLockedValue { failing in
            defer { failing = error != nil }
            return failing
        }
        if let error, !wasFailing {
            self.logger?.warning(
                "systemd notification failed",
                metadata: ["error": "\(error)", "message": "\(assignments.first ?? "")"]
            )
        }
    }

    /// One datagram on a fresh socket, as libsystemd does; returns the error text, if any.
    private static func sendDatagram(_ message: String, to address: [UInt8], isAbstract: Bool) -> String? {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return "socket: \(String(cString: strerror(errno)))" }
        defer { close(fd) }

        var storage = sockaddr_un()
        storage.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &storage.sun_path) { path in
            path.copyBytes(from: address)
        }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path) ?? 2
        // A path is counted with its NUL; an abstract name is exactly its bytes.
        let length = socklen_t(pathOffset + address.count + (isAbstract ? 0 : 1))

        var text = message
        let sent = text.withUTF8 { bytes in
            withUnsafePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                    var result: Int
                    repeat {
                        result = sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), socketAddress, length)
                    } while result < 0 && errno == EINTR
                    return result
                }
            }
        }
        if sent < 0 {
            return "sendto: \(String(cString: strerror(errno)))"
        }
        return nil
    }
}
