/// The protocol versions the gateway speaks: TLS 1.2 and 1.3 only (1.0 and 1.1 are
/// deprecated by RFC 8996 and never enabled).
package enum TLSVersion: String, Sendable, Hashable, CaseIterable {
    case v1_2 = "1.2"
    case v1_3 = "1.3"
}

/// Where a certificate chain and its private key come from: PEM files, the key
/// optionally encrypted with a passphrase. A value; any thread. Its description never
/// shows the passphrase.
package struct TLSCertificateSource: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    /// PEM: the leaf certificate first, then the intermediates.
    package var certificateChainFile: String
    /// PEM private key (PKCS#8 or traditional), possibly encrypted.
    package var privateKeyFile: String
    /// The key's passphrase; nil when it is not encrypted.
    package var privateKeyPassphrase: String?

    package init(certificateChainFile: String, privateKeyFile: String, privateKeyPassphrase: String? = nil) {
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
        self.privateKeyPassphrase = privateKeyPassphrase
    }

    package var description: String {
        "certificate \(self.certificateChainFile), key \(self.privateKeyFile)"
            + (self.privateKeyPassphrase == nil ? "" : " (passphrase <redacted>)")
    }

    package var debugDescription: String { self.description }
}

/// How a TLS listener asks for client certificates.
package enum TLSClientAuthentication: String, Sendable, Hashable, CaseIterable {
    /// No client certificate is requested.
    case none
    /// Requested; a client without one is let in, a client with an invalid one is refused.
    case optional
    /// A certificate signed by the client CA is required (mTLS).
    case required
}

/// Everything needed to build the server `TLSContext` of the TLS listeners. A value; any
/// thread. Built from `[server.tls]` by the server module.
package struct TLSServerConfiguration: Sendable, Hashable {
    /// One more certificate, chosen when the client's SNI names one of `serverNames`.
    package struct SNICertificate: Sendable, Hashable {
        /// Lowercase host names; `*.example.com` matches exactly one label.
        package var serverNames: [String]
        package var certificate: TLSCertificateSource

        package init(serverNames: [String], certificate: TLSCertificateSource) {
            self.serverNames = serverNames
            self.certificate = certificate
        }
    }

    /// Presented when SNI is absent or matches no `sniCertificates` entry.
    package var certificate: TLSCertificateSource
    package var sniCertificates: [SNICertificate] = []
    package var minimumVersion: TLSVersion = .v1_2
    /// PEM bundle of the CAs client certificates must chain to (needed unless `.none`).
    package var clientCAFile: String?
    package var clientAuthentication: TLSClientAuthentication = .none
    /// How long a session (cache entry or ticket) may be resumed.
    package var sessionTimeout: Duration = .seconds(300)
    /// Server-side session cache entries (TLS 1.2 session ids); tickets need none.
    package var sessionCacheSize: Int = 20_480

    package init(certificate: TLSCertificateSource) {
        self.certificate = certificate
    }
}

/// Everything needed to build a client `TLSContext`: for `https://` upstreams and, later,
/// outbound calls to identity providers (JWKS, introspection). A value; any thread.
package struct TLSClientConfiguration: Sendable, Hashable {
    /// PEM bundle of trusted CAs; nil trusts the system store (`SSL_CTX_set_default_verify_paths`).
    package var caFile: String?
    /// A client certificate to present when the server asks for one.
    package var certificate: TLSCertificateSource?
    package var minimumVersion: TLSVersion = .v1_2
    /// ALPN protocols offered, in preference order.
    package var applicationProtocols: [String] = ["http/1.1"]

    package init(caFile: String? = nil, certificate: TLSCertificateSource? = nil) {
        self.caFile = caFile
        self.certificate = certificate
    }
}
