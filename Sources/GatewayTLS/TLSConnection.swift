import CGatewayOpenSSL
import GatewayCrypto
package import NIOCore

/// The TLS session of one connection as a state machine over an `SSLObject`: every event
/// (ciphertext received, plaintext to send, close, timeout, end of stream) is a method
/// returning what the handler must do; no channel is touched here, so it runs without
/// sockets in tests.
///
/// After any method the handler sends what `takeOutboundCiphertext` returns (handshake
/// messages, records, alerts, `close_notify`). OpenSSL's error queue is cleared before
/// every `SSL_*` call and read right after a failure. No `SSL_shutdown` follows a fatal
/// error (OpenSSL forbids it). Owned by one `TLSHandler`; its event loop only.
package struct TLSConnection {
    /// Which side of the handshake this is.
    package enum Mode: Sendable, Hashable {
        case server
        /// `serverName` is sent as SNI (unless it is an IP address) and the peer's
        /// certificate must match it; nil skips the host-name check (only for callers that
        /// pin trust otherwise).
        case client(serverName: String?)
    }

    enum State {
        /// Created; the handshake has not started.
        case idle
        case handshaking
        case active
        /// We sent `close_notify` and wait for the peer's.
        case closing
        /// Both sides are done, or the peer closed (and we answered).
        case closed
        /// A fatal error: nothing may be sent, not even `close_notify`.
        case failed(TLSError)
    }

    private let ssl: SSLObject

    /// Received bytes not yet handed on as plaintext: ciphertext of an incomplete record, or
    /// decrypted bytes OpenSSL still holds.
    var hasBufferedInput: Bool { self.ssl.bufferedCiphertext > 0 || SSL_pending(self.ssl.ssl) > 0 }
    private(set) var state: State = .idle
    /// Plaintext decrypted before an error or `close_notify` that the same read found:
    /// delivered first, the condition is reported by the next call.
    private var pendingInbound: InboundAction?

    package init(context: TLSContext, mode: Mode) throws(TLSError) {
        self.ssl = try SSLObject(context: context)
        switch mode {
        case .server:
            SSL_set_accept_state(self.ssl.ssl)
        case .client(let serverName):
            SSL_set_connect_state(self.ssl.ssl)
            if let serverName {
                OpenSSLErrorQueue.clear()
                // SNI carries host names only (RFC 6066 §3); SSL_set1_host checks an IP
                // literal against the certificate's IP addresses instead.
                if !Self.isIPAddress(serverName) {
                    guard cgw_SSL_set_tlsext_host_name(self.ssl.ssl, serverName) == 1 else {
                        throw TLSError(.configuration, reasons: ["invalid server name"] + OpenSSLErrorQueue.drain())
                    }
                }
                SSL_set_hostflags(self.ssl.ssl, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
                guard SSL_set1_host(self.ssl.ssl, serverName) == 1 else {
                    throw TLSError(.configuration, reasons: ["invalid server name"] + OpenSSLErrorQueue.drain())
                }
            }
        }
    }

    static func isIPAddress(_ name: String) -> Bool {
        name.contains(":") || (!name.isEmpty && name.allSatisfy { $0 == "." || ($0.isASCII && $0.isNumber) })
    }

    // MARK: events

    /// What starting the handshake means for the handler.
    package enum StartAction: Equatable {
        /// Arm the handshake timer and send any ciphertext (a client's ClientHello).
        case startedHandshake
        /// Already started or over: nothing to do.
        case none
        case failed(TLSError)
    }

    /// The channel is active: a client sends its ClientHello, a server waits for one.
    package mutating func startHandshake() -> StartAction {
        guard case .idle = self.state else { return .none }
        self.state = .handshaking
        if case .failed(let error) = self.doHandshake() {
            return .failed(error)
        }
        return .startedHandshake
    }

    /// What the handler does next with the ciphertext received so far.
    package enum InboundAction: Equatable {
        /// Everything buffered is consumed; wait for more bytes.
        case needMoreData
        /// Cancel the handshake timer, tell the pipeline, send the queued writes.
        case handshakeCompleted(TLSHandshakeInfo)
        /// Decrypted application data for the next handler.
        case plaintext(ByteBuffer)
        /// The peer sent `close_notify`; ours is queued in reply: send it, then close.
        case peerClosed
        /// The `close_notify` we waited for arrived: close the channel.
        case shutdownCompleted
        /// Fatal: send what ciphertext there is (an alert), report the error, close.
        case failed(TLSError)
        /// Nothing more will ever come (closed or failed before).
        case closed
    }

    /// Feeds ciphertext from the network; follow with `nextInbound` until `.needMoreData`.
    package mutating func receive(_ buffer: ByteBuffer) {
        switch self.state {
        case .idle, .handshaking, .active, .closing:
            self.ssl.receiveCiphertext(buffer)
        case .closed, .failed:
            break  // the session is over: bytes after it are ignored
        }
    }

    /// The next step with the buffered ciphertext. Plaintext is read in pieces of at most
    /// `maximumPlaintext` bytes.
    package mutating func nextInbound(
        allocator: ByteBufferAllocator,
        maximumPlaintext: Int = 64 * 1024
    ) -> InboundAction {
        if let pending = self.pendingInbound {
            self.pendingInbound = nil
            return pending
        }
        switch self.state {
        case .idle:
            // Bytes before channelActive (EmbeddedChannel, or a server that was added late):
            // start accepting now.
            self.state = .handshaking
            return self.nextInbound(allocator: allocator, maximumPlaintext: maximumPlaintext)
        case .handshaking:
            return self.doHandshake()
        case .active:
            return self.readPlaintext(allocator: allocator, maximumPlaintext: maximumPlaintext, deliver: true)
        case .closing:
            // Application data after our close_notify is read and dropped; we only wait
            // for the peer's close_notify.
            return self.readPlaintext(allocator: allocator, maximumPlaintext: maximumPlaintext, deliver: false)
        case .closed, .failed:
            return .closed
        }
    }

    private mutating func doHandshake() -> InboundAction {
        OpenSSLErrorQueue.clear()
        let result = SSL_do_handshake(self.ssl.ssl)
        if result == 1 {
            self.state = .active
            return .handshakeCompleted(self.handshakeInfo())
        }
        let error = SSL_get_error(self.ssl.ssl, result)
        switch error {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return .needMoreData
        default:
            let failure = self.failure(kind: .handshakeFailed, code: error)
            self.state = .failed(failure)
            return .failed(failure)
        }
    }

    private func handshakeInfo() -> TLSHandshakeInfo {
        var protocolPointer: UnsafePointer<UInt8>?
        var protocolLength: UInt32 = 0
        SSL_get0_alpn_selected(self.ssl.ssl, &protocolPointer, &protocolLength)
        let alpn = protocolPointer.map {
            String(decoding: UnsafeBufferPointer(start: $0, count: Int(protocolLength)), as: UTF8.self)
        }
        let version = String(cString: SSL_get_version(self.ssl.ssl))
        let cipher =
            SSL_get_current_cipher(self.ssl.ssl).flatMap { SSL_CIPHER_get_name($0) }.map { String(cString: $0) } ?? ""
        var serverName: String?
        if let raw = SSL_get_servername(self.ssl.ssl, TLSEXT_NAMETYPE_host_name) {
            serverName = String(cString: raw)
        }
        let peerCertificate = SSL_get0_peer_certificate(self.ssl.ssl) != nil
        return TLSHandshakeInfo(
            applicationProtocol: (alpn?.isEmpty ?? true) ? nil : alpn,
            version: version,
            cipher: cipher,
            serverName: serverName,
            resumed: SSL_session_reused(self.ssl.ssl) == 1,
            peerPresentedCertificate: peerCertificate
        )
    }

    private mutating func readPlaintext(
        allocator: ByteBufferAllocator,
        maximumPlaintext: Int,
        deliver: Bool
    ) -> InboundAction {
        // Plaintext is never longer than the ciphertext it came from.
        let available = self.ssl.bufferedCiphertext + Int(SSL_pending(self.ssl.ssl))
        var buffer = allocator.buffer(capacity: max(1024, min(available, maximumPlaintext)))
        while true {
            if buffer.writableBytes == 0 {
                // Full: hand it over (or drop it while closing) before reading on.
                if deliver { return .plaintext(buffer) }
                buffer.clear()
            }
            var code: Int32 = 0
            OpenSSLErrorQueue.clear()
            let read = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 0) { bytes -> Int in
                var count = 0
                if SSL_read_ex(self.ssl.ssl, bytes.baseAddress, bytes.count, &count) == 1 {
                    return count
                }
                code = SSL_get_error(self.ssl.ssl, 0)
                return 0
            }
            if read > 0 { continue }
            let next: InboundAction
            switch code {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
                next = .needMoreData
            case SSL_ERROR_ZERO_RETURN:
                next = self.receivedCloseNotify()
            default:
                let failure = self.failure(kind: .protocolError, code: code)
                self.state = .failed(failure)
                next = .failed(failure)
            }
            if deliver, buffer.readableBytes > 0 {
                if next != .needMoreData { self.pendingInbound = next }
                return .plaintext(buffer)
            }
            return next
        }
    }

    private mutating func receivedCloseNotify() -> InboundAction {
        switch self.state {
        case .closing:
            self.state = .closed
            return .shutdownCompleted
        case .active, .handshaking, .idle:
            // Answer with our close_notify (queued in the write BIO); the peer does not
            // read anything after it, so the connection is over.
            OpenSSLErrorQueue.clear()
            _ = SSL_shutdown(self.ssl.ssl)
            OpenSSLErrorQueue.clear()
            self.state = .closed
            return .peerClosed
        case .closed, .failed:
            return .closed
        }
    }

    /// What to do with plaintext the application wants to send.
    package enum WriteAction: Equatable {
        /// The handshake is not done: keep it and encrypt it once it is.
        case queue
        /// Encrypted: send `takeOutboundCiphertext()`.
        case encrypted
        /// The session is over or broke: fail the write.
        case failed(TLSError)
    }

    /// Encrypts `plaintext` into records (in the outbound BIO) once the handshake is done.
    package mutating func write(_ plaintext: ByteBuffer) -> WriteAction {
        switch self.state {
        case .idle, .handshaking:
            return .queue
        case .closing, .closed:
            return .failed(TLSError(.closed))
        case .failed(let error):
            return .failed(error)
        case .active:
            break
        }
        var code: Int32 = 0
        let ok = plaintext.withUnsafeReadableBytes { bytes -> Bool in
            guard bytes.count > 0 else { return true }
            OpenSSLErrorQueue.clear()
            var written = 0
            // A memory BIO takes everything: SSL_write_ex writes all of it or fails.
            if SSL_write_ex(self.ssl.ssl, bytes.baseAddress, bytes.count, &written) == 1 { return true }
            code = SSL_get_error(self.ssl.ssl, 0)
            return false
        }
        if ok { return .encrypted }
        let failure = self.failure(kind: .protocolError, code: code)
        self.state = .failed(failure)
        return .failed(failure)
    }

    /// What closing the connection means for the handler.
    package enum CloseAction: Equatable {
        /// Send `close_notify` (in the outbound BIO), arm the shutdown timer, wait for the
        /// peer's before closing the channel.
        case sendCloseNotify
        /// No TLS session to end cleanly (not established, failed, or already over):
        /// close the channel now.
        case closeChannel
        /// A shutdown is already in progress; wait for it.
        case alreadyClosing
    }

    package mutating func close() -> CloseAction {
        switch self.state {
        case .active:
            OpenSSLErrorQueue.clear()
            let result = SSL_shutdown(self.ssl.ssl)
            OpenSSLErrorQueue.clear()
            if result == 1 {
                // The peer's close_notify had already been read.
                self.state = .closed
                return .closeChannel
            }
            self.state = .closing
            return .sendCloseNotify
        case .closing:
            return .alreadyClosing
        case .idle, .handshaking:
            // No application data was exchanged: nothing to protect against truncation.
            self.state = .closed
            return .closeChannel
        case .closed, .failed:
            return .closeChannel
        }
    }

    /// What the end of the TCP stream means.
    package enum EndOfStreamAction: Equatable {
        /// An expected end (after the close_notify exchange, our own close, or a failure).
        case none
        /// The stream ended without `close_notify`: report `TLSError.uncleanShutdown`.
        case uncleanShutdown(TLSError)
    }

    package mutating func endOfStream() -> EndOfStreamAction {
        switch self.state {
        case .idle, .closed, .failed, .closing:
            // .closing: we asked to close; a peer that drops the socket instead of
            // answering close_notify truncates nothing we still wanted.
            self.state = .closed
            return .none
        case .handshaking, .active:
            let error = TLSError(.uncleanShutdown, reasons: ["the peer closed the connection without close_notify"])
            self.state = .failed(error)
            return .uncleanShutdown(error)
        }
    }

    /// The handshake timer fired: fails the connection if the handshake is still running.
    package mutating func handshakeTimedOut() -> TLSError? {
        guard case .handshaking = self.state else {
            if case .idle = self.state {
                let error = TLSError(.handshakeTimeout, reasons: ["no ClientHello within the handshake timeout"])
                self.state = .failed(error)
                return error
            }
            return nil
        }
        let error = TLSError(.handshakeTimeout, reasons: ["the handshake did not complete in time"])
        self.state = .failed(error)
        return error
    }

    /// The shutdown timer fired: true if the peer's close_notify is still missing (close anyway).
    package mutating func shutdownTimedOut() -> Bool {
        guard case .closing = self.state else { return false }
        self.state = .closed
        return true
    }

    /// Ciphertext to send, produced by the last events.
    package func takeOutboundCiphertext(allocator: ByteBufferAllocator) -> ByteBuffer? {
        self.ssl.takeOutboundCiphertext(allocator: allocator)
    }

    package var isHandshakeComplete: Bool {
        switch self.state {
        case .active, .closing, .closed: return true
        case .idle, .handshaking, .failed: return false
        }
    }

    // MARK: errors

    private func failure(kind: TLSError.Kind, code: Int32) -> TLSError {
        var reasons = OpenSSLErrorQueue.drain()
        var kind = kind
        let verify = SSL_get_verify_result(self.ssl.ssl)
        if verify != X509_V_OK {
            kind = .certificateVerificationFailed
            reasons.append("certificate verify: " + String(cString: X509_verify_cert_error_string(verify)))
        }
        if reasons.isEmpty {
            reasons.append(code == SSL_ERROR_SYSCALL ? "unexpected end of stream" : "SSL error \(code)")
        }
        return TLSError(kind, reasons: reasons)
    }
}

/// What a finished handshake agreed on. A value; any thread.
package struct TLSHandshakeInfo: Sendable, Hashable {
    /// ALPN result, e.g. `http/1.1`; nil when none was negotiated.
    package var applicationProtocol: String?
    /// `TLSv1.2` or `TLSv1.3`.
    package var version: String
    /// OpenSSL's name of the cipher suite.
    package var cipher: String
    /// The SNI name the client sent (server side), or the one we sent (client side).
    package var serverName: String?
    /// An abbreviated handshake (session resumption).
    package var resumed: Bool
    /// The peer sent a certificate (always for servers; mTLS clients).
    package var peerPresentedCertificate: Bool
}
