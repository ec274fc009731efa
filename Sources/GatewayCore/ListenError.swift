import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// A listening socket that could not be opened, said the way an operator fixes it: which
/// address, and why in words (taken by another process, a privileged port) rather than a
/// system call's name and errno. A value; any thread.
package struct ListenError: Error, CustomStringConvertible {
    package enum Reason: Sendable, Equatable {
        case inUse
        case permissionDenied
        case unavailableAddress
        case other(String)
    }

    /// `host:port` as configured.
    package var address: String
    /// `listener` or `admin listener`.
    package var listener: String
    package var reason: Reason

    package var description: String {
        switch self.reason {
        case .inUse:
            "cannot open the \(self.listener) on \(self.address): the address is already in use (another process listens there)"
        case .permissionDenied:
            "cannot open the \(self.listener) on \(self.address): permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)"
        case .unavailableAddress:
            "cannot open the \(self.listener) on \(self.address): no interface of this host has that address"
        case .other(let text):
            "cannot open the \(self.listener) on \(self.address): \(text)"
        }
    }

    /// `error` from binding `address`, classified; nil when it is not a socket error.
    package static func classify(_ error: any Error, address: String, listener: String) -> ListenError? {
        guard let error = error as? IOError else { return nil }
        let reason: Reason
        switch error.errnoCode {
        case EADDRINUSE: reason = .inUse
        case EACCES, EPERM: reason = .permissionDenied
        case EADDRNOTAVAIL: reason = .unavailableAddress
        default: reason = .other(String(cString: strerror(error.errnoCode)))
        }
        return ListenError(address: address, listener: listener, reason: reason)
    }
}
