import NIOCore
import NIOEmbedded
import Testing

@testable import GatewayTLS

/// Contexts shared by the tests (building one reads files and generates ticket keys).
enum Contexts {
    static let pki = TestPKI.shared

    static func server(
        minimumVersion: TLSVersion = .v1_2,
        clientAuthentication: TLSClientAuthentication = .none,
        sni: Bool = false
    ) throws -> TLSContext {
        var configuration = TLSServerConfiguration(
            certificate: TLSCertificateSource(
                certificateChainFile: pki.serverCertificate,
                privateKeyFile: pki.serverKey
            )
        )
        configuration.minimumVersion = minimumVersion
        if clientAuthentication != .none {
            configuration.clientAuthentication = clientAuthentication
            configuration.clientCAFile = pki.caCertificate
        }
        if sni {
            configuration.sniCertificates = [
                .init(
                    serverNames: ["api.example.test", "*.sni.example.test"],
                    certificate: TLSCertificateSource(
                        certificateChainFile: pki.sniCertificate,
                        privateKeyFile: pki.sniKey
                    )
                )
            ]
        }
        return try TLSContext.server(configuration)
    }

    static func client(caFile: String? = pki.caCertificate, withCertificate: Bool = false) throws -> TLSContext {
        var configuration = TLSClientConfiguration(caFile: caFile)
        if withCertificate {
            configuration.certificate = TLSCertificateSource(
                certificateChainFile: pki.clientCertificate,
                privateKeyFile: pki.clientKey
            )
        }
        return try TLSContext.client(configuration)
    }
}

private func bytes(_ count: Int, seed: UInt8 = 7) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    var value = seed
    for index in 0..<count {
        value = value &* 31 &+ 17
        out[index] = value ^ UInt8(truncatingIfNeeded: index >> 8)
    }
    return out
}

@Suite struct TLSHandlerTests {
    @Test func handshakeNegotiatesTLS13AndHTTP11() throws {
        let pair = try BackToBack(server: Contexts.server(), client: Contexts.client())
        try pair.handshake()
        #expect(pair.clientRecorder.handshakes.count == 1)
        #expect(pair.serverRecorder.handshakes.count == 1)
        let client = try #require(pair.clientRecorder.handshakes.first)
        let server = try #require(pair.serverRecorder.handshakes.first)
        #expect(client.version == "TLSv1.3")
        #expect(client.applicationProtocol == "http/1.1")
        #expect(server.applicationProtocol == "http/1.1")
        #expect(server.serverName == "localhost")
        #expect(client.cipher == server.cipher)
        #expect(pair.clientRecorder.errors.isEmpty && pair.serverRecorder.errors.isEmpty)
        let future = try #require(pair.clientHandler.handshakeFuture)
        #expect(try future.wait().version == "TLSv1.3")
    }

    @Test func dataFlowsBothWays() throws {
        let pair = try BackToBack(server: Contexts.server(), client: Contexts.client())
        try pair.handshake()
        let request = Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
        let written = pair.write(pair.client, request)
        try pair.pump()
        #expect(Array(pair.serverRecorder.received.readableBytesView) == request)
        try written.wait()
        let response = Array("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".utf8)
        pair.write(pair.server, response)
        try pair.pump()
        #expect(Array(pair.clientRecorder.received.readableBytesView) == response)
        // The bytes on the wire are not the plaintext.
        #expect(pair.clientToServerBytes > request.count)
    }

    @Test func largeWritesArriveIntactInBothDirections() throws {
        let pair = try BackToBack(server: Contexts.server(), client: Contexts.client())
        try pair.handshake()
        let upload = bytes(5 * 1024 * 1024 + 123, seed: 1)
        let download = bytes(8 * 1024 * 1024 + 7, seed: 2)
        let uploaded = pair.write(pair.client, upload)
        let downloaded = pair.write(pair.server, download)
        // Several writes in one flush: small ones coalesce, order is kept.
        pair.write(pair.server, Array("tail-1".utf8), flush: false)
        pair.write(pair.server, Array("tail-2".utf8))
        try pair.pump()
        try uploaded.wait()
        try downloaded.wait()
        #expect(pair.serverRecorder.received.readableBytes == upload.count)
        #expect(Array(pair.serverRecorder.received.readableBytesView) == upload)
        #expect(Array(pair.clientRecorder.received.readableBytesView) == download + Array("tail-1tail-2".utf8))
    }

    @Test func writesBeforeTheHandshakeAreQueuedAndSentAfterIt() throws {
        let pair = try BackToBack(server: Contexts.server(), client: Contexts.client())
        // Written before the channel is even active: nothing may leave unencrypted.
        let first = pair.write(pair.client, Array("first ".utf8))
        try pair.activate()
        let second = pair.write(pair.client, Array("second".utf8))
        // Only the ClientHello is on the wire so far, and it does not carry our data.
        let hello = try #require(try pair.client.readOutbound(as: ByteBuffer.self))
        #expect(hello.getInteger(at: hello.readerIndex, as: UInt8.self) == 0x16)  // handshake record
        #expect(!String(decoding: hello.readableBytesView, as: UTF8.self).contains("first"))
        try pair.server.writeInbound(hello)
        try pair.pump()
        #expect(String(decoding: pair.serverRecorder.received.readableBytesView, as: UTF8.self) == "first second")
        try first.wait()
        try second.wait()
    }

    @Test func clientCloseNotifyIsAnsweredAndBothSidesCloseCleanly() throws {
        let pair = try BackToBack(server: Contexts.server(), client: Contexts.client())
        try pair.handshake()
        let closed = pair.client.close()
        try pair.pump()
        try closed.wait()
        #expect(pair.serverRecorder.inactive)
        #expect(pair.clientRecorder.inactive)
        #expect(pair.serverRecorder.errors.isEmpty, "\(pair.serverRecorder.errors)")
        #expect(pair.clientRecorder.errors.isEmpty, "\(pair.clientRecorder.errors)")
    }

    @Test func serverCloseNotifyIsAnsweredAndBothSidesCloseCleanly() throws {
        let pair = try BackToBack(server: Contexts.server(), client: Contexts.client())
        try pair.handshake()
        pair.write(pair.server, Array("bye".utf8))
        let closed = pair.server.close()
        try pair.pump()
        try closed.wait()
        #expect(String(decoding: pair.clientRecorder.received.readableBytesView, as: UTF8.self) == "bye")
        #expect(pair.serverRecorder.inactive && pair.clientRecorder.inactive)
        #expect(pair.serverRecorder.errors.isEmpty && pair.clientRecorder.errors.isEmpty)
        // After close_notify nothing more can be written.
        #expect(throws: (any Error).self) { try pair.write(pair.server, [1]).wait() }
    }

    @Test func closeWaitsForThePeersCloseNotifyOnlyUntilTheShutdownTimeout() throws {
        let pair = try BackToBack(server: Contexts.server(), client: Contexts.client(), shutdownTimeout: .seconds(2))
        try pair.handshake()
        let closed = pair.client.close()
        // The server never answers: its close_notify is never delivered.
        let closeNotify = try #require(try pair.client.readOutbound(as: ByteBuffer.self))
        #expect(
            closeNotify.getInteger(at: closeNotify.readerIndex, as: UInt8.self) == 0x17
                || closeNotify.getInteger(at: closeNotify.readerIndex, as: UInt8.self) == 0x15
        )
        pair.loop.advanceTime(by: .seconds(1))
        #expect(!pair.clientRecorder.inactive)
        pair.loop.advanceTime(by: .seconds(1))
        #expect(pair.clientRecorder.inactive)
        try closed.wait()
    }

    @Test func truncatedStreamIsReportedAsUncleanShutdown() throws {
        let pair = try BackToBack(server: Contexts.server(), client: Contexts.client())
        try pair.handshake()
        pair.write(pair.client, bytes(40_000))
        // Half of the client's records reach the server, then the TCP stream ends.
        var ciphertext = ByteBuffer()
        while var part = try pair.client.readOutbound(as: ByteBuffer.self) { ciphertext.writeBuffer(&part) }
        try pair.server.writeInbound(
            ciphertext.getSlice(at: ciphertext.readerIndex, length: ciphertext.readableBytes / 2)!
        )
        pair.server.pipeline.fireChannelInactive()
        #expect(pair.serverRecorder.received.readableBytes < 40_000)
        #expect(pair.serverRecorder.errorKinds == [.uncleanShutdown])
        #expect(pair.serverRecorder.inactive)
    }

    @Test func cleanCloseAfterDataIsNotAnError() throws {
        let pair = try BackToBack(server: Contexts.server(), client: Contexts.client())
        try pair.handshake()
        pair.write(pair.client, bytes(1000))
        pair.client.close(promise: nil)
        try pair.pump()
        pair.server.pipeline.fireChannelInactive()
        #expect(pair.serverRecorder.received.readableBytes == 1000)
        #expect(pair.serverRecorder.errors.isEmpty)
    }

    @Test func garbageInsteadOfClientHelloFailsTheHandshake() throws {
        let pair = try BackToBack(server: Contexts.server(), client: Contexts.client())
        try pair.server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let future = try #require(pair.serverHandler.handshakeFuture)
        try pair.server.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"))
        pair.loop.run()
        #expect(pair.serverRecorder.errorKinds == [.handshakeFailed])
        #expect(
            pair.serverRecorder.errors.first?.reasons.contains("http request") == true,
            "\(pair.serverRecorder.errors)"
        )
        #expect(pair.serverRecorder.received.readableBytes == 0)
        #expect(!pair.server.isActive)
        #expect(throws: TLSError.self) { try future.wait() }
    }

    @Test func handshakeTimesOut() throws {
        let pair = try BackToBack(server: Contexts.server(), client: Contexts.client(), handshakeTimeout: .seconds(5))
        try pair.server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        // A ClientHello that never comes in full.
        try pair.server.writeInbound(ByteBuffer(bytes: [0x16, 0x03, 0x01, 0x02, 0x00]))
        pair.loop.advanceTime(by: .seconds(4))
        #expect(pair.server.isActive)
        pair.loop.advanceTime(by: .seconds(1))
        #expect(pair.serverRecorder.errorKinds == [.handshakeTimeout])
        #expect(!pair.server.isActive)
    }

    @Test func completedHandshakeDisarmsTheTimer() throws {
        let pair = try BackToBack(server: Contexts.server(), client: Contexts.client(), handshakeTimeout: .seconds(5))
        try pair.handshake()
        pair.loop.advanceTime(by: .seconds(60))
        #expect(pair.server.isActive && pair.client.isActive)
        #expect(pair.serverRecorder.errors.isEmpty && pair.clientRecorder.errors.isEmpty)
    }
}
