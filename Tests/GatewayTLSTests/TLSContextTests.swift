import NIOCore
import NIOEmbedded
import Testing

@testable import GatewayTLS

@Suite struct TLSContextTests {
    let pki = TestPKI.shared

    @Test func sniPicksTheMatchingCertificate() throws {
        let server = try Contexts.server(sni: true)
        // The client checks the host name, so a wrong certificate fails the handshake.
        for name in ["api.example.test", "x.sni.example.test", "localhost"] {
            let pair = try BackToBack(server: server, client: Contexts.client(), serverName: name)
            try pair.handshake()
            #expect(pair.clientRecorder.errors.isEmpty, "\(name): \(pair.clientRecorder.errors)")
            #expect(pair.serverRecorder.handshakes.first?.serverName == name)
        }
        // No match: the default certificate (for localhost), which the client then refuses.
        let pair = try BackToBack(server: server, client: Contexts.client(), serverName: "unknown.example.test")
        try pair.handshake()
        #expect(pair.clientRecorder.errorKinds == [.certificateVerificationFailed])
    }

    @Test func clientRefusesAnUnknownCA() throws {
        let pair = try BackToBack(server: Contexts.server(), client: Contexts.client(caFile: pki.unknownCACertificate))
        try pair.handshake()
        #expect(pair.clientRecorder.errorKinds == [.certificateVerificationFailed])
        #expect(
            pair.clientRecorder.errors.first?.reasons.contains { $0.contains("unable to get local issuer certificate") }
                == true
        )
        #expect(pair.clientRecorder.handshakes.isEmpty && pair.serverRecorder.handshakes.isEmpty)
        #expect(pair.serverRecorder.errors.count == 1, "the server sees the client's alert")
    }

    @Test func clientRefusesAWrongHostName() throws {
        let pair = try BackToBack(server: Contexts.server(), client: Contexts.client(), serverName: "db.example.test")
        try pair.handshake()
        #expect(pair.clientRecorder.errorKinds == [.certificateVerificationFailed])
        #expect(pair.clientRecorder.errors.first?.reasons.contains { $0.contains("hostname mismatch") } == true)
    }

    @Test func clientChecksIPAddressesAgainstIPSANs() throws {
        let ok = try BackToBack(server: Contexts.server(), client: Contexts.client(), serverName: "127.0.0.1")
        try ok.handshake()
        #expect(ok.clientRecorder.errors.isEmpty)
        #expect(ok.serverRecorder.handshakes.first?.serverName == nil, "no SNI for an IP address")
        let wrong = try BackToBack(server: Contexts.server(), client: Contexts.client(), serverName: "127.0.0.2")
        try wrong.handshake()
        #expect(wrong.clientRecorder.errorKinds == [.certificateVerificationFailed])
    }

    @Test func clientRefusesAnExpiredCertificate() throws {
        let server = try TLSContext.server(
            TLSServerConfiguration(
                certificate: .init(certificateChainFile: pki.expiredCertificate, privateKeyFile: pki.expiredKey)
            )
        )
        let pair = try BackToBack(server: server, client: Contexts.client())
        try pair.handshake()
        #expect(pair.clientRecorder.errorKinds == [.certificateVerificationFailed])
        #expect(pair.clientRecorder.errors.first?.reasons.contains { $0.contains("expired") } == true)
    }

    @Test func requiredClientCertificateRefusesAClientWithout() throws {
        let server = try Contexts.server(clientAuthentication: .required)
        let without = try BackToBack(server: server, client: Contexts.client())
        try without.handshake()
        #expect(without.serverRecorder.errorKinds == [.handshakeFailed])
        #expect(without.serverRecorder.handshakes.isEmpty)
        let with = try BackToBack(server: server, client: Contexts.client(withCertificate: true))
        try with.handshake()
        #expect(with.serverRecorder.errors.isEmpty && with.clientRecorder.errors.isEmpty)
        #expect(with.serverRecorder.handshakes.first?.peerPresentedCertificate == true)
    }

    @Test func optionalClientCertificateLetsAClientWithoutIn() throws {
        let server = try Contexts.server(clientAuthentication: .optional)
        let without = try BackToBack(server: server, client: Contexts.client())
        try without.handshake()
        #expect(without.serverRecorder.errors.isEmpty)
        #expect(without.serverRecorder.handshakes.first?.peerPresentedCertificate == false)
    }

    @Test func minimumVersion13RefusesATLS12OnlyClient() throws {
        // The client side of this test is a raw OpenSSL client capped at TLS 1.2.
        let server = try Contexts.server(minimumVersion: .v1_3)
        let client = try Contexts.client()
        client.capMaximumVersion(.v1_2)
        let pair = try BackToBack(server: server, client: client)
        try pair.handshake()
        #expect(pair.serverRecorder.errorKinds == [.handshakeFailed])
        #expect(pair.serverRecorder.errors.first?.reasons.contains { $0.contains("unsupported protocol") } == true)
    }

    @Test func mismatchedKeyIsRefusedWithAReason() {
        let configuration = TLSServerConfiguration(
            certificate: .init(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.sniKey)
        )
        #expect {
            _ = try TLSContext.server(configuration)
        } throws: { error in
            guard let error = error as? TLSError else { return false }
            return error.kind == .configuration && error.description.contains("does not match")
        }
    }

    @Test func missingFilesAreRefusedWithTheirNames() {
        let configuration = TLSServerConfiguration(
            certificate: .init(certificateChainFile: pki.path("nope.pem"), privateKeyFile: pki.serverKey)
        )
        #expect {
            _ = try TLSContext.server(configuration)
        } throws: { error in
            (error as? TLSError)?.description.contains("nope.pem") == true
        }
    }

    @Test func encryptedKeyNeedsTheRightPassphraseWhichIsNeverPrinted() throws {
        var source = TLSCertificateSource(
            certificateChainFile: pki.serverCertificate,
            privateKeyFile: pki.encryptedServerKey
        )
        #expect(throws: TLSError.self) { try TLSContext.server(TLSServerConfiguration(certificate: source)) }
        source.privateKeyPassphrase = "wrong"
        #expect(throws: TLSError.self) { try TLSContext.server(TLSServerConfiguration(certificate: source)) }
        source.privateKeyPassphrase = pki.passphrase
        let server = try TLSContext.server(TLSServerConfiguration(certificate: source))
        let pair = try BackToBack(server: server, client: Contexts.client())
        try pair.handshake()
        #expect(pair.serverRecorder.handshakes.count == 1)
        #expect(!"\(source)".contains(pki.passphrase))
        #expect(!String(reflecting: source).contains(pki.passphrase))
        #expect(!"\(TLSServerConfiguration(certificate: source))".contains(pki.passphrase))
    }
}
