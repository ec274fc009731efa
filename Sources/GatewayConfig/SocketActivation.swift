/// The listening sockets a service manager passes at start (systemd socket activation), read
/// the way `sd_listen_fds(3)` reads them, and checked against `[server] listen`.
///
/// Pure functions over the environment and over facts the caller gathered about each
/// descriptor (`DescriptorFacts`): no system call happens here, so every rule is testable.
/// A namespace of values; any thread.
package enum SocketActivation {
    /// The first passed descriptor (`SD_LISTEN_FDS_START`): 0, 1 and 2 are stdio.
    package static let firstDescriptor: Int32 = 3
    /// More than this many passed descriptors is refused as a malformed environment.
    package static let maxDescriptors = 64

    /// What the caller found out about one inherited descriptor (fstat, getsockopt
    /// SO_TYPE/SO_ACCEPTCONN, getsockname). A value; any thread.
    package struct DescriptorFacts: Sendable, Equatable {
        package var isOpen: Bool
        package var isSocket: Bool
        /// SOCK_STREAM.
        package var isStream: Bool
        /// SO_ACCEPTCONN: listen() was called on it.
        package var isListening: Bool
        /// Its local address when it is an AF_INET or AF_INET6 socket (nil otherwise:
        /// AF_UNIX, or getsockname failed).
        package var address: ListenAddress?

        package init(isOpen: Bool, isSocket: Bool, isStream: Bool, isListening: Bool, address: ListenAddress?) {
            self.isOpen = isOpen
            self.isSocket = isSocket
            self.isStream = isStream
            self.isListening = isListening
            self.address = address
        }

        /// A listening TCP socket on `address`.
        package static func listeningTCP(_ address: ListenAddress) -> DescriptorFacts {
            DescriptorFacts(isOpen: true, isSocket: true, isStream: true, isListening: true, address: address)
        }
    }

    /// One passed listening TCP socket: its descriptor is owned by the listener that adopts
    /// it. A value; any thread.
    package struct Socket: Sendable, Equatable {
        package var descriptor: Int32
        /// Its `LISTEN_FDNAMES` entry (the socket unit's FileDescriptorName=, by default the
        /// unit's name), when given.
        package var name: String?
        package var address: ListenAddress

        package init(descriptor: Int32, name: String?, address: ListenAddress) {
            self.descriptor = descriptor
            self.name = name
            self.address = address
        }

        var label: String {
            "fd \(self.descriptor)\(self.name.map { " (\($0))" } ?? "") \(self.address)"
        }
    }

    /// What the environment says. A value; any thread.
    package enum Received: Sendable, Equatable {
        /// No `LISTEN_PID`/`LISTEN_FDS`: the gateway binds `listen` itself.
        case none
        /// The variables are meant for another process (`LISTEN_PID` is not ours): ignored,
        /// as `sd_listen_fds` does; the reason is logged.
        case ignored(String)
        case sockets([Socket])
    }

    /// A passed socket that cannot be used, or `listen` that does not match the sockets;
    /// the message names the descriptor and both sides. A value; any thread.
    package struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        package var description: String

        package init(_ description: String) {
            self.description = description
        }
    }

    /// Reads `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES`. `facts` is asked about
    /// descriptors 3 ..< 3 + LISTEN_FDS only; each must be a listening TCP socket.
    package static func parse(
        environment: [String: String],
        pid: Int32,
        facts: (Int32) -> DescriptorFacts
    ) throws(Problem) -> Received {
        guard let pidText = environment["LISTEN_PID"], let countText = environment["LISTEN_FDS"] else {
            if environment["LISTEN_FDS"] != nil {
                return .ignored("LISTEN_FDS is set without LISTEN_PID")
            }
            return .none
        }
        guard let listenPID = Self.decimal(pidText), listenPID > 0 else {
            throw Problem("LISTEN_PID=\(Self.shown(pidText)) is not a process id")
        }
        guard listenPID == Int(pid) else {
            return .ignored("LISTEN_PID=\(listenPID) names another process (this one is \(pid))")
        }
        guard let count = Self.decimal(countText) else {
            throw Problem("LISTEN_FDS=\(Self.shown(countText)) is not a number of descriptors")
        }
        guard count <= Self.maxDescriptors else {
            throw Problem("LISTEN_FDS=\(count) is more than the \(Self.maxDescriptors) descriptors accepted")
        }
        var names: [String]?
        if let text = environment["LISTEN_FDNAMES"] {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == count else {
                throw Problem("LISTEN_FDNAMES names \(parts.count) descriptor(s) but LISTEN_FDS=\(count)")
            }
            names = parts
        }
        var sockets: [Socket] = []
        for index in 0..<count {
            let descriptor = Self.firstDescriptor + Int32(index)
            let name = names?[index]
            let label = "fd \(descriptor)\(name.map { " (\(Self.shown($0)))" } ?? "")"
            let fact = facts(descriptor)
            guard fact.isOpen else { throw Problem("\(label) passed in LISTEN_FDS is not open") }
            guard fact.isSocket else { throw Problem("\(label) passed in LISTEN_FDS is not a socket") }
            guard fact.isStream else {
                throw Problem(
                    "\(label) passed in LISTEN_FDS is not a stream socket (ListenStream= is needed, not ListenDatagram=)"
                )
            }
            guard let address = fact.address else {
                throw Problem(
                    "\(label) passed in LISTEN_FDS is not an IPv4 or IPv6 socket (ListenStream= takes host:port here)"
                )
            }
            guard fact.isListening else { throw Problem("\(label) passed in LISTEN_FDS is not listening") }
            sockets.append(Socket(descriptor: descriptor, name: name.map(Self.shown), address: address))
        }
        for (index, socket) in sockets.enumerated()
        where sockets[..<index].contains(where: { Self.same($0.address, socket.address) }) {
            throw Problem("\(socket.label) is passed twice in LISTEN_FDS")
        }
        return .sockets(sockets)
    }

    /// The sockets to serve on, in `configured` order. An explicit `listen` must name
    /// exactly the passed sockets' addresses; a default one is replaced by them.
    /// - Parameter configured: `[server] listen`, host names already resolved to addresses.
    package static func assign(
        _ sockets: [Socket],
        configured: [ListenAddress],
        explicit: Bool
    ) throws(Problem) -> [Socket] {
        guard !sockets.isEmpty else {
            throw Problem("LISTEN_FDS=0: the service manager passed no socket; check the socket unit's ListenStream=")
        }
        guard explicit else { return sockets }
        let missing = configured.filter { address in !sockets.contains { Self.same($0.address, address) } }
        let extra = sockets.filter { socket in !configured.contains { Self.same($0, socket.address) } }
        guard missing.isEmpty, extra.isEmpty else {
            let listen = configured.map(\.description).joined(separator: ", ")
            let passed = sockets.map(\.label).joined(separator: ", ")
            throw Problem(
                "[server] listen = [\(listen)] does not match the sockets passed by the service manager "
                    + "(LISTEN_FDS): \(passed); make listen name the socket unit's ListenStream= addresses, "
                    + "or remove listen to serve on the passed sockets"
            )
        }
        return configured.compactMap { address in sockets.first { Self.same($0.address, address) } }
    }

    /// Same port and same address (compared as numbers when both are IP literals).
    static func same(_ a: ListenAddress, _ b: ListenAddress) -> Bool {
        guard a.port == b.port else { return false }
        if let x = IPAddress.parse(a.host), let y = IPAddress.parse(b.host) { return x == y }
        return a.host.lowercased() == b.host.lowercased()
    }

    /// A strictly decimal, bounded number (no sign, no spaces).
    private static func decimal(_ text: String) -> Int? {
        guard !text.isEmpty, text.utf8.count <= 9, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            return nil
        }
        return Int(text)
    }

    /// Environment text as it may appear in a message: bounded, printable ASCII only.
    private static func shown(_ text: String) -> String {
        let printable = text.unicodeScalars.prefix(64).map {
            $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?"
        }
        return String(printable) + (text.unicodeScalars.count > 64 ? "..." : "")
    }
}
