import Foundation
import GatewayConfig
import GatewayTestSupport
import Testing

/// `[server.tls]`, `[[server.tls.certificates]]` and the https keys of `[upstream]`.
/// Certificate contents are checked by the server module (GatewayTLS); here only syntax,
/// presence and readability of the files.
@Suite struct ConfigurationLoaderTLSTests {
    /// Readable stand-ins for PEM files (the loader checks only that they can be read).
    private static let files: (cert: String, key: String, passphrase: String) = {
        let directory = NSTemporaryDirectory() + "gateway-config-tls-\(getpid())"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let cert = directory + "/cert.pem"
        let key = directory + "/key.pem"
        let passphrase = directory + "/pass"
        _ = FileManager.default.createFile(atPath: cert, contents: Data("cert".utf8))
        _ = FileManager.default.createFile(atPath: key, contents: Data("key".utf8))
        _ = FileManager.default.createFile(atPath: passphrase, contents: Data("s3cret passphrase\n".utf8))
        return (cert, key, passphrase)
    }()

    private func parse(_ text: String) throws(ConfigurationError) -> GatewayConfiguration {
        try ConfigurationLoader.parse(text: text, file: "gateway.conf")
    }

    private var minimal: String {
        """
        [server.tls]
        certificate_file = "\(Self.files.cert)"
        private_key_file = "\(Self.files.key)"

        """
    }

    private let upstream = "[upstream]\nurl = \"http://127.0.0.1:9000\"\n"

    @Test func defaults() throws {
        let tls = try #require(try self.parse(self.minimal + self.upstream).server.tls)
        #expect(tls.minimumVersion == .v1_2)
        #expect(tls.hsts && tls.hstsMaxAgeSeconds == 31_536_000)
        #expect(tls.strictTransportSecurity == "max-age=31536000")
        #expect(tls.clientAuthentication == .none)
        #expect(tls.sessionTimeout == .seconds(300) && tls.handshakeTimeout == .seconds(10))
        #expect(tls.certificates.isEmpty && tls.privateKeyPassphrase == nil)
    }

    @Test func everyKey() throws {
        let text =
            self.minimal + """
                private_key_passphrase_file = "\(Self.files.passphrase)"
                min_version = "1.3"
                hsts = false
                hsts_max_age = 600
                client_ca_file = "\(Self.files.cert)"
                client_auth = "required"
                session_timeout = "1h"
                handshake_timeout = "3s"

                [[server.tls.certificates]]
                server_names = ["API.example.com", "*.internal.example.com"]
                certificate_file = "\(Self.files.cert)"
                private_key_file = "\(Self.files.key)"

                """ + self.upstream
        let configuration = try self.parse(text)
        let tls = try #require(configuration.server.tls)
        #expect(tls.minimumVersion == .v1_3 && tls.clientAuthentication == .required)
        #expect(tls.strictTransportSecurity == nil)
        #expect(tls.privateKeyPassphrase?.value == "s3cret passphrase")
        #expect(tls.certificates.first?.serverNames == ["api.example.com", "*.internal.example.com"])
        #expect(tls.handshakeTimeout == .seconds(3) && tls.sessionTimeout == .seconds(3600))
        let rendered = configuration.renderedTOML()
        #expect(rendered.contains("[server.tls]") && rendered.contains("[[server.tls.certificates]]"))
        #expect(!rendered.contains("s3cret"))
    }

    @Test func unknownKeysAndBadValuesNameTheLine() {
        let found = configurationProblems(self.minimal + "min_version = \"1.1\"\nciphers = \"ALL\"\n" + self.upstream)
        #expect(
            found.contains {
                $0.key == "server.tls.min_version" && $0.line == 4 && $0.message.contains("\"1.2\" or \"1.3\"")
            }
        )
        #expect(found.contains { $0.key == "server.tls.ciphers" && $0.line == 5 && $0.message.contains("unknown key") })
    }

    @Test func missingOrUnreadableFiles() {
        let found = configurationProblems("[server.tls]\nprivate_key_file = \"/nonexistent/key.pem\"\n" + self.upstream)
        #expect(found.contains { $0.key == "server.tls.certificate_file" && $0.message.contains("is required") })
        #expect(
            found.contains {
                $0.key == "server.tls.private_key_file" && $0.line == 2 && $0.message.contains("cannot be read")
            }
        )
    }

    @Test func clientAuthNeedsACAFile() {
        let found = configurationProblems(self.minimal + "client_auth = \"optional\"\n" + self.upstream)
        #expect(found.map(\.key) == ["server.tls.client_auth"])
    }

    @Test func sniEntriesNeedNamesAndFiles() {
        let text =
            self.minimal + """
                [[server.tls.certificates]]
                server_names = ["bad name"]
                certificate_file = "\(Self.files.cert)"

                """ + self.upstream
        let found = configurationProblems(text)
        #expect(
            found.contains {
                $0.key == "server.tls.certificates[0].server_names" && $0.message.contains("not a host name")
            }
        )
        #expect(found.contains { $0.key == "server.tls.certificates[0].private_key_file" })
    }

    @Test func httpsUpstreamKeys() throws {
        let text = """
            [upstream]
            url = "https://api.internal:8443"
            ca_file = "\(Self.files.cert)"
            tls_server_name = "api.example.com"
            client_certificate_file = "\(Self.files.cert)"
            client_key_file = "\(Self.files.key)"
            """
        let upstream = try self.parse(text).upstream
        #expect(upstream.isTLS && upstream.port == 8443 && upstream.caFile == Self.files.cert)
        #expect(upstream.effectiveTLSServerName == "api.example.com")
        #expect(upstream.url == "https://api.internal:8443")
        let plain = try self.parse("[upstream]\nurl = \"https://api.internal\"\n").upstream
        #expect(plain.authority == "api.internal" && plain.effectiveTLSServerName == "api.internal")
    }

    @Test func httpsKeysOnAnHTTPUpstreamAreRefused() {
        let found = configurationProblems("[upstream]\nurl = \"http://x:1\"\ntls_server_name = \"x\"\n")
        #expect(found.map(\.key) == ["upstream.tls_server_name"])
        #expect(found.first?.message.contains("https://") == true)
    }

    @Test func clientCertificateNeedsItsKey() {
        let found = configurationProblems(
            "[upstream]\nurl = \"https://x\"\nclient_certificate_file = \"\(Self.files.cert)\"\n"
        )
        #expect(found.map(\.key) == ["upstream.client_certificate_file"])
    }
}
