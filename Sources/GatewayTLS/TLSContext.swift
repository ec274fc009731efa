import CGatewayOpenSSL
import GatewayCrypto

/// One OpenSSL `SSL_CTX`: certificates, trust, versions, ciphers and the session cache of
/// a TLS listener (server) or of outbound connections (client).
///
/// Immutable once built and shared read-only by every event loop: OpenSSL allows `SSL_new`
/// on one `SSL_CTX` from many threads at once, and its session cache takes its own lock.
/// A reload builds a new context and swaps it in; connections keep the context they
/// started with (each `SSLObject` holds a strong reference), so the old one is freed
/// when its last connection ends. Building reads files: do it off the event loops.
package final class TLSContext: @unchecked Sendable {
    package enum Role: Sendable {
        case server
        case client
    }

    let pointer: OpaquePointer
    package let role: Role
    /// Server only: the contexts of `[[server.tls.certificates]]`, by lowercase host name
    /// (`*.example.com` for wildcards). The SNI callback switches a connection to one.
    private let sniContexts: [String: TLSContext]

    private init(pointer: OpaquePointer, role: Role, sniContexts: [String: TLSContext] = [:]) {
        self.pointer = pointer
        self.role = role
        self.sniContexts = sniContexts
    }

    deinit {
        SSL_CTX_free(self.pointer)
    }

    /// ECDHE with AEAD only, for TLS 1.2 (TLS 1.3 suites are all AEAD; OpenSSL's defaults
    /// are kept). Forward secrecy, no CBC, no RSA key exchange, no DHE.
    package static let tls12CipherList =
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        + "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
    package static let groups = "X25519:P-256:P-384"
    private static let sessionIDContext: [UInt8] = Array("dbaudit-gateway".utf8)

    // MARK: server

    /// The context of a TLS listener: the default certificate plus one context per SNI
    /// certificate, every key checked against its certificate.
    package static func server(_ configuration: TLSServerConfiguration) throws(TLSError) -> TLSContext {
        var sni: [String: TLSContext] = [:]
        for entry in configuration.sniCertificates {
            let context = try Self.makeServerContext(configuration, certificate: entry.certificate, sni: [:])
            for name in entry.serverNames {
                sni[name.lowercased()] = context
            }
        }
        return try Self.makeServerContext(configuration, certificate: configuration.certificate, sni: sni)
    }

    private static func makeServerContext(
        _ configuration: TLSServerConfiguration,
        certificate: TLSCertificateSource,
        sni: [String: TLSContext]
    ) throws(TLSError) -> TLSContext {
        OpenSSLErrorQueue.clear()
        guard let pointer = SSL_CTX_new(TLS_server_method()) else {
            throw TLSError(.configuration, reasons: ["SSL_CTX_new failed"] + OpenSSLErrorQueue.drain())
        }
        // Owned from here: freed by deinit even if a later step throws.
        let context = TLSContext(pointer: pointer, role: .server, sniContexts: sni)
        try context.applyCommonSettings(minimumVersion: configuration.minimumVersion)
        try context.useCertificate(certificate)

        // Resumption: TLS 1.3 stateless tickets (keys generated per context) and a bounded
        // server cache for TLS 1.2 session ids. The id context is required once client
        // certificates are verified, or resumption would fail the handshake.
        _ = cgw_SSL_CTX_set_session_cache_mode(pointer, Int(SSL_SESS_CACHE_SERVER))
        _ = cgw_SSL_CTX_sess_set_cache_size(pointer, configuration.sessionCacheSize)
        let seconds = max(1, configuration.sessionTimeout.components.seconds)
        _ = SSL_CTX_set_timeout(pointer, Int(seconds))
        _ = Self.sessionIDContext.withUnsafeBufferPointer {
            SSL_CTX_set_session_id_context(pointer, $0.baseAddress, UInt32($0.count))
        }

        switch configuration.clientAuthentication {
        case .none:
            SSL_CTX_set_verify(pointer, SSL_VERIFY_NONE, nil)
        case .optional, .required:
            guard let caFile = configuration.clientCAFile else {
                throw TLSError(.configuration, reasons: ["client_auth needs client_ca_file"])
            }
            OpenSSLErrorQueue.clear()
            guard SSL_CTX_load_verify_locations(pointer, caFile, nil) == 1,
                let names = SSL_load_client_CA_file(caFile)
            else {
                throw TLSError(
                    .configuration,
                    reasons: ["cannot load client CA file \(caFile)"] + OpenSSLErrorQueue.drain()
                )
            }
            SSL_CTX_set_client_CA_list(pointer, names)
            let mode =
                configuration.clientAuthentication == .required
                ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER
            SSL_CTX_set_verify(pointer, mode, nil)
        }

        // ALPN: http/1.1 is the only protocol spoken; a client offering only others is
        // refused with no_application_protocol (RFC 7301 §3.2).
        SSL_CTX_set_alpn_select_cb(pointer, selectHTTP11, nil)
        if !sni.isEmpty {
            let arg = Unmanaged.passUnretained(context).toOpaque()
            guard cgw_SSL_CTX_set_tlsext_servername_callback(pointer, selectSNIContext, arg) == 1 else {
                throw TLSError(.configuration, reasons: ["cannot install the SNI callback"] + OpenSSLErrorQueue.drain())
            }
        }
        return context
    }

    // MARK: client

    /// A context for outbound connections: peer verification on (system trust store or
    /// `caFile`), host-name checks per connection (`TLSConnection`), ALPN offered.
    package static func client(_ configuration: TLSClientConfiguration) throws(TLSError) -> TLSContext {
        OpenSSLErrorQueue.clear()
        guard let pointer = SSL_CTX_new(TLS_client_method()) else {
            throw TLSError(.configuration, reasons: ["SSL_CTX_new failed"] + OpenSSLErrorQueue.drain())
        }
        let context = TLSContext(pointer: pointer, role: .client)
        try context.applyCommonSettings(minimumVersion: configuration.minimumVersion)
        OpenSSLErrorQueue.clear()
        if let caFile = configuration.caFile {
            guard SSL_CTX_load_verify_locations(pointer, caFile, nil) == 1 else {
                throw TLSError(.configuration, reasons: ["cannot load CA file \(caFile)"] + OpenSSLErrorQueue.drain())
            }
        } else {
            guard SSL_CTX_set_default_verify_paths(pointer) == 1 else {
                throw TLSError(.configuration, reasons: ["cannot load the system CA store"] + OpenSSLErrorQueue.drain())
            }
        }
        SSL_CTX_set_verify(pointer, SSL_VERIFY_PEER, nil)
        if let certificate = configuration.certificate {
            try context.useCertificate(certificate)
        }
        if !configuration.applicationProtocols.isEmpty {
            var wire: [UInt8] = []
            for name in configuration.applicationProtocols {
                let bytes = Array(name.utf8)
                guard (1...255).contains(bytes.count) else {
                    throw TLSError(.configuration, reasons: ["invalid ALPN protocol name"])
                }
                wire.append(UInt8(bytes.count))
                wire += bytes
            }
            // Returns 0 on success (unlike most of the API).
            let failed = wire.withUnsafeBufferPointer {
                SSL_CTX_set_alpn_protos(pointer, $0.baseAddress, UInt32($0.count))
            }
            guard failed == 0 else {
                throw TLSError(.configuration, reasons: ["cannot set ALPN protocols"] + OpenSSLErrorQueue.drain())
            }
        }
        return context
    }

    // MARK: shared

    private func applyCommonSettings(minimumVersion: TLSVersion) throws(TLSError) {
        let pointer = self.pointer
        OpenSSLErrorQueue.clear()
        let minimum = minimumVersion == .v1_3 ? TLS1_3_VERSION : TLS1_2_VERSION
        guard cgw_SSL_CTX_set_min_proto_version(pointer, minimum) == 1,
            cgw_SSL_CTX_set_max_proto_version(pointer, TLS1_3_VERSION) == 1
        else {
            throw TLSError(.configuration, reasons: ["cannot set protocol versions"] + OpenSSLErrorQueue.drain())
        }
        guard SSL_CTX_set_cipher_list(pointer, Self.tls12CipherList) == 1 else {
            throw TLSError(.configuration, reasons: ["cannot set the cipher list"] + OpenSSLErrorQueue.drain())
        }
        guard cgw_SSL_CTX_set1_groups_list(pointer, Self.groups) == 1 else {
            throw TLSError(.configuration, reasons: ["cannot set the key exchange groups"] + OpenSSLErrorQueue.drain())
        }
        // Renegotiation is a DoS lever and never needed; compression enables CRIME.
        _ = SSL_CTX_set_options(
            pointer,
            cgw_SSL_OP_NO_RENEGOTIATION() | cgw_SSL_OP_NO_COMPRESSION() | cgw_SSL_OP_CIPHER_SERVER_PREFERENCE()
        )
        // Idle keep-alive connections give their 16-34 KiB record buffers back: memory per
        // open connection matters more than the small cost of reallocating them.
        _ = cgw_SSL_CTX_set_mode(pointer, Int(SSL_MODE_RELEASE_BUFFERS))
    }

    /// Loads a PEM chain and its key (decrypted with the passphrase if any) and checks
    /// they belong together. The passphrase is handed to OpenSSL only: never logged.
    private func useCertificate(_ source: TLSCertificateSource) throws(TLSError) {
        let pointer = self.pointer
        OpenSSLErrorQueue.clear()
        guard SSL_CTX_use_certificate_chain_file(pointer, source.certificateChainFile) == 1 else {
            throw TLSError(
                .configuration,
                reasons: ["cannot load certificate chain \(source.certificateChainFile)"] + OpenSSLErrorQueue.drain()
            )
        }
        guard let bio = BIO_new_file(source.privateKeyFile, "r") else {
            throw TLSError(
                .configuration,
                reasons: ["cannot open private key \(source.privateKeyFile)"] + OpenSSLErrorQueue.drain()
            )
        }
        defer { BIO_free(bio) }
        // A non-NULL passphrase argument (empty when none is configured) keeps OpenSSL from
        // prompting on the terminal for an encrypted key.
        let passphrase = source.privateKeyPassphrase ?? ""
        let key = passphrase.withCString { pass in
            PEM_read_bio_PrivateKey(bio, nil, nil, UnsafeMutableRawPointer(mutating: pass))
        }
        guard let key else {
            let hint =
                source.privateKeyPassphrase == nil
                ? " (encrypted? set private_key_passphrase_file)" : " (wrong passphrase?)"
            throw TLSError(
                .configuration,
                reasons: ["cannot read private key \(source.privateKeyFile)\(hint)"] + OpenSSLErrorQueue.drain()
            )
        }
        defer { EVP_PKEY_free(key) }
        guard SSL_CTX_use_PrivateKey(pointer, key) == 1, SSL_CTX_check_private_key(pointer) == 1 else {
            throw TLSError(
                .configuration,
                reasons: [
                    "private key \(source.privateKeyFile) does not match certificate \(source.certificateChainFile)"
                ]
                    + OpenSSLErrorQueue.drain()
            )
        }
    }

    /// Lowers the highest protocol version (tests play an old client with it).
    func capMaximumVersion(_ version: TLSVersion) {
        _ = cgw_SSL_CTX_set_max_proto_version(self.pointer, version == .v1_2 ? TLS1_2_VERSION : TLS1_3_VERSION)
    }

    /// The SNI context for `name`: an exact entry, else a `*.` wildcard for its parent.
    func sniContext(for name: String) -> TLSContext? {
        if self.sniContexts.isEmpty { return nil }
        let lower = name.lowercased()
        if let exact = self.sniContexts[lower] { return exact }
        if let dot = lower.firstIndex(of: ".") {
            return self.sniContexts["*" + lower[dot...]]
        }
        return nil
    }
}

/// ALPN selection (server): `http/1.1` if the client offers it, otherwise a fatal alert.
private func selectHTTP11(
    _ ssl: OpaquePointer?,
    _ out: UnsafeMutablePointer<UnsafePointer<UInt8>?>?,
    _ outLength: UnsafeMutablePointer<UInt8>?,
    _ offered: UnsafePointer<UInt8>?,
    _ offeredLength: UInt32,
    _ arg: UnsafeMutableRawPointer?
) -> Int32 {
    guard let offered, let out, let outLength else { return SSL_TLSEXT_ERR_ALERT_FATAL }
    let wanted: [UInt8] = Array("http/1.1".utf8)
    var index = 0
    let total = Int(offeredLength)
    while index < total {
        let length = Int(offered[index])
        let start = index + 1
        guard start + length <= total else { break }
        if length == wanted.count {
            var same = true
            for offset in 0..<length where offered[start + offset] != wanted[offset] {
                same = false
                break
            }
            if same {
                out.pointee = offered + start
                outLength.pointee = UInt8(length)
                return SSL_TLSEXT_ERR_OK
            }
        }
        index = start + length
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL
}

/// SNI (server): switches the connection to the certificate for the requested name;
/// an unknown or absent name keeps the default certificate.
private func selectSNIContext(
    _ ssl: OpaquePointer?,
    _ alert: UnsafeMutablePointer<Int32>?,
    _ arg: UnsafeMutableRawPointer?
) -> Int32 {
    guard let ssl, let arg, let raw = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) else {
        return SSL_TLSEXT_ERR_OK
    }
    // The default context outlives this call: every connection holds it (SSLObject).
    let context = Unmanaged<TLSContext>.fromOpaque(arg).takeUnretainedValue()
    if let chosen = context.sniContext(for: String(cString: raw)) {
        _ = SSL_set_SSL_CTX(ssl, chosen.pointer)
    }
    return SSL_TLSEXT_ERR_OK
}
