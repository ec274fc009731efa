import GatewayConfig
import NIOConcurrencyHelpers
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// The system calls behind the listening sockets: taking the descriptors a service manager
/// passed (`LISTEN_FDS`, read once per process), and opening the gateway's own listeners
/// with `SO_REUSEPORT` plus a steering program, so an upgraded process can start beside the
/// old one and receive every new connection from the moment it listens.
///
/// Called from the lifecycle task at start-up (never from an event loop); the once-only
/// state sits behind a lock.
enum ListenSockets {
    /// The backlog of the sockets the gateway opens itself.
    static let ownBacklog: Int32 = 1024
    /// The backlog re-applied to passed sockets: adopting a descriptor makes NIO call
    /// listen() again with its own small default, so the socket unit's `Backlog=4096` is
    /// restored (the kernel caps it at net.core.somaxconn).
    static let inheritedBacklog: Int32 = 4096

    private static let taken = NIOLockedValueBox(false)

    /// The passed sockets, validated, each marked close-on-exec, with `LISTEN_PID`,
    /// `LISTEN_FDS` and `LISTEN_FDNAMES` removed from the environment so nothing this
    /// process starts inherits them. Only the first call looks; later ones get `.none`.
    static func takeInherited() throws(SocketActivation.Problem) -> SocketActivation.Received {
        let first = Self.taken.withLockedValue { taken in
            defer { taken = true }
            return !taken
        }
        guard first else { return .none }
        var environment: [String: String] = [:]
        for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            if let value = getenv(name) { environment[name] = String(cString: value) }
            unsetenv(name)
        }
        let received = try SocketActivation.parse(environment: environment, pid: getpid(), facts: Self.facts(of:))
        if case .sockets(let sockets) = received {
            for socket in sockets {
                let flags = fcntl(socket.descriptor, F_GETFD)
                if flags >= 0 { _ = fcntl(socket.descriptor, F_SETFD, flags | FD_CLOEXEC) }
            }
        }
        return received
    }

    /// What `descriptor` is: fstat, SO_TYPE, SO_ACCEPTCONN, getsockname.
    static func facts(of descriptor: Int32) -> SocketActivation.DescriptorFacts {
        var facts = SocketActivation.DescriptorFacts(
            isOpen: false,
            isSocket: false,
            isStream: false,
            isListening: false,
            address: nil
        )
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { return facts }
        facts.isOpen = true
        guard (info.st_mode & S_IFMT) == S_IFSOCK else { return facts }
        facts.isSocket = true
        facts.isStream = Self.intOption(descriptor, SO_TYPE) == Int32(SOCK_STREAM.rawValue)
        facts.isListening = Self.intOption(descriptor, SO_ACCEPTCONN) == 1
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard named == 0 else { return facts }
        facts.address = Self.listenAddress(storage)
        return facts
    }

    /// A new listening TCP socket on `address` with SO_REUSEADDR and SO_REUSEPORT, steered
    /// (see `attachSteering`). Throws an `IOError` naming the failed call.
    static func open(_ address: SocketAddress, backlog: Int32 = Self.ownBacklog) throws -> Int32 {
        let family: Int32
        switch address {
        case .v4: family = AF_INET
        case .v6: family = AF_INET6
        default: throw IOError(errnoCode: EAFNOSUPPORT, reason: "socket")
        }
        let descriptor = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        do {
            try Self.setIntOption(descriptor, SO_REUSEADDR, 1)
            try Self.setIntOption(descriptor, SO_REUSEPORT, 1)
            let bound = address.withSockAddr { pointer, size in bind(descriptor, pointer, socklen_t(size)) }
            guard bound == 0 else { throw IOError(errnoCode: errno, reason: "bind") }
            guard listen(descriptor, backlog) == 0 else { throw IOError(errnoCode: errno, reason: "listen") }
            try Self.attachSteering(descriptor)
        } catch {
            close(descriptor)
            throw error
        }
        return descriptor
    }

    /// Sets the backlog again on a listening socket NIO adopted (it calls listen() with
    /// its default of 128).
    static func relisten(_ descriptor: Int32, backlog: Int32) {
        _ = listen(descriptor, backlog)
    }

    /// A classic BPF program for the port's SO_REUSEPORT group that sends each new
    /// connection to socket 1 of the group, i.e. the second process to listen: while an
    /// old and a new gateway overlap during an upgrade, the new one gets every connection,
    /// so nothing is left in the old listener's queue when it closes (Linux resets what is
    /// queued there unless net.ipv4.tcp_migrate_req = 1). With one socket the index is out
    /// of range and the kernel falls back to its hash, i.e. that socket. The group keeps the
    /// last program attached; every gateway attaches this same one.
    private static func attachSteering(_ descriptor: Int32) throws {
        // struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }: BPF_RET | BPF_K, k = 1.
        var program: [UInt64] = [UInt64(0x06) | (UInt64(1) << 32)]
        let result = program.withUnsafeMutableBytes { instructions -> Int32 in
            // struct sock_fprog { unsigned short len; struct sock_filter *filter; }
            var fprog = SocketFilterProgram(length: 1, filter: instructions.baseAddress)
            return setsockopt(
                descriptor,
                SOL_SOCKET,
                Self.soAttachReuseportCBPF,
                &fprog,
                socklen_t(MemoryLayout<SocketFilterProgram>.size)
            )
        }
        guard result == 0 else { throw IOError(errnoCode: errno, reason: "setsockopt(SO_ATTACH_REUSEPORT_CBPF)") }
    }

    /// `struct sock_fprog`, laid out as in <linux/filter.h>; lives only for the
    /// setsockopt call that copies it.
    private struct SocketFilterProgram {
        var length: UInt16
        var filter: UnsafeMutableRawPointer?
    }

    /// SO_ATTACH_REUSEPORT_CBPF from <asm-generic/socket.h> (Linux 4.5).
    private static let soAttachReuseportCBPF: Int32 = 51

    private static func intOption(_ descriptor: Int32, _ name: Int32) -> Int32? {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(descriptor, SOL_SOCKET, name, &value, &length) == 0 ? value : nil
    }

    private static func setIntOption(_ descriptor: Int32, _ name: Int32, _ value: Int32) throws {
        var value = value
        guard setsockopt(descriptor, SOL_SOCKET, name, &value, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw IOError(errnoCode: errno, reason: "setsockopt")
        }
    }

    /// The text `inet_ntop` wrote into `buffer`, up to its terminating NUL.
    private static func string(_ buffer: [CChar]) -> String {
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func listenAddress(_ storage: sockaddr_storage) -> ListenAddress? {
        var storage = storage
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address -> ListenAddress? in
                    var ip = address.pointee.sin_addr
                    guard inet_ntop(AF_INET, &ip, &text, socklen_t(text.count)) != nil else { return nil }
                    return ListenAddress(
                        host: Self.string(text),
                        port: Int(UInt16(bigEndian: address.pointee.sin_port))
                    )
                }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address -> ListenAddress? in
                    var ip = address.pointee.sin6_addr
                    guard inet_ntop(AF_INET6, &ip, &text, socklen_t(text.count)) != nil else { return nil }
                    return ListenAddress(
                        host: Self.string(text),
                        port: Int(UInt16(bigEndian: address.pointee.sin6_port))
                    )
                }
            }
        default:
            return nil
        }
    }
}
