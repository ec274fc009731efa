/// Why a TLS connection or context failed: a stable kind plus OpenSSL's own reasons.
///
/// A value; any thread. `reasons` may name files, ciphers or certificate problems, never a
/// secret (passphrases are handed to OpenSSL, never put into messages). It is for logs:
/// a client of the gateway never sees it (see `GatewayError`).
package struct TLSError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, coarsely: callers branch on this.
    package enum Kind: String, Hashable, Sendable {
        /// Building an `SSL_CTX` (certificate, key, CA, cipher settings).
        case configuration
        /// The handshake failed (protocol error, no common cipher or version, bad certificate).
        case handshakeFailed
        /// The peer's certificate did not verify (untrusted CA, wrong host name, expired).
        case certificateVerificationFailed
        /// The handshake did not finish within the handshake timeout.
        case handshakeTimeout
        /// The connection ended without the peer's `close_notify`: the data may be truncated.
        case uncleanShutdown
        /// The peer did not answer our `close_notify` within the shutdown timeout.
        case shutdownTimeout
        /// A record failed to decrypt or the peer broke the protocol after the handshake.
        case protocolError
        /// A write or read after the TLS session ended.
        case closed
    }

    package var kind: Kind
    /// OpenSSL's error queue (and the verify result) at the time, oldest first.
    package var reasons: [String]

    package init(_ kind: Kind, reasons: [String] = []) {
        self.kind = kind
        self.reasons = reasons
    }

    package var description: String {
        self.reasons.isEmpty ? self.kind.rawValue : "\(self.kind.rawValue): \(self.reasons.joined(separator: "; "))"
    }
}
