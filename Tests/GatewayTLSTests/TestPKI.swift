import Foundation

/// Certificates for the TLS tests, made with the `openssl` CLI in a temporary directory
/// once per test process (no private key is committed): a CA, a server certificate for
/// `localhost`/127.0.0.1, a second server certificate for SNI, a client certificate, an
/// expired one, one for another host, an encrypted key, and a CA nobody trusts.
/// Immutable after creation; any thread.
final class TestPKI: Sendable {
    let directory: String

    static let shared: TestPKI = {
        do {
            return try TestPKI()
        } catch {
            fatalError("cannot make test certificates with the openssl CLI: \(error)")
        }
    }()

    var caCertificate: String { self.path("ca.pem") }
    var serverCertificate: String { self.path("server.pem") }
    var serverKey: String { self.path("server.key") }
    /// For `api.example.test` and `*.sni.example.test`.
    var sniCertificate: String { self.path("sni.pem") }
    var sniKey: String { self.path("sni.key") }
    var clientCertificate: String { self.path("client.pem") }
    var clientKey: String { self.path("client.key") }
    var expiredCertificate: String { self.path("expired.pem") }
    var expiredKey: String { self.path("expired.key") }
    /// Valid, from the CA, but for `other.example.test` only.
    var otherHostCertificate: String { self.path("otherhost.pem") }
    var otherHostKey: String { self.path("otherhost.key") }
    /// The server key encrypted with `passphrase`.
    var encryptedServerKey: String { self.path("server-encrypted.key") }
    let passphrase = "correct horse battery staple"
    /// A CA that signed nothing the tests' servers present.
    var unknownCACertificate: String { self.path("unknown-ca.pem") }

    func path(_ name: String) -> String { self.directory + "/" + name }

    private init() throws {
        let directory = NSTemporaryDirectory() + "gateway-tls-tests-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.directory = directory
        try Self.makeCA(directory, name: "ca", subject: "/CN=dbaudit test CA")
        try Self.makeCA(directory, name: "unknown-ca", subject: "/CN=unknown test CA")
        try Self.makeLeaf(
            directory,
            name: "server",
            cn: "localhost",
            san: "DNS:localhost,IP:127.0.0.1",
            ext: "serverAuth"
        )
        try Self.makeLeaf(
            directory,
            name: "sni",
            cn: "api.example.test",
            san: "DNS:api.example.test,DNS:*.sni.example.test",
            ext: "serverAuth"
        )
        try Self.makeLeaf(directory, name: "client", cn: "client-1", san: "DNS:client-1", ext: "clientAuth")
        try Self.makeLeaf(
            directory,
            name: "otherhost",
            cn: "other.example.test",
            san: "DNS:other.example.test",
            ext: "serverAuth"
        )
        try Self.makeLeaf(
            directory,
            name: "expired",
            cn: "localhost",
            san: "DNS:localhost,IP:127.0.0.1",
            ext: "serverAuth",
            validity: ["-not_before", "20200101000000Z", "-not_after", "20210101000000Z"]
        )
        try Self.run([
            "pkey", "-in", directory + "/server.key", "-aes256", "-passout", "pass:\(self.passphrase)",
            "-out", directory + "/server-encrypted.key",
        ])
    }

    deinit {
        try? FileManager.default.removeItem(atPath: self.directory)
    }

    private static func makeCA(_ directory: String, name: String, subject: String) throws {
        try run(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "\(directory)/\(name).key"])
        try run([
            "req", "-x509", "-new", "-key", "\(directory)/\(name).key", "-sha256", "-days", "30", "-subj", subject,
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-out", "\(directory)/\(name).pem",
        ])
    }

    private static func makeLeaf(
        _ directory: String,
        name: String,
        cn: String,
        san: String,
        ext: String,
        validity: [String] = ["-days", "30"]
    ) throws {
        try run(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "\(directory)/\(name).key"])
        try run([
            "req", "-new", "-key", "\(directory)/\(name).key", "-subj", "/CN=\(cn)", "-out", "\(directory)/\(name).csr",
        ])
        let extensions = "\(directory)/\(name).ext"
        try "subjectAltName=\(san)\nextendedKeyUsage=\(ext)\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
            .write(toFile: extensions, atomically: true, encoding: .utf8)
        // `openssl ca` takes explicit dates; `x509 -req` only -days (no past dates), so the
        // expired certificate is made by `ca` in a throwaway database.
        if validity.first == "-not_before" {
            let db = "\(directory)/\(name)-db"
            try FileManager.default.createDirectory(atPath: db, withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: "\(db)/index.txt", contents: Data())
            try "1000\n".write(toFile: "\(db)/serial", atomically: true, encoding: .utf8)
            let config = """
                [ca]
                default_ca = test
                [test]
                database = \(db)/index.txt
                serial = \(db)/serial
                new_certs_dir = \(db)
                default_md = sha256
                policy = any
                copy_extensions = none
                [any]
                commonName = supplied
                """
            try config.write(toFile: "\(db)/ca.cnf", atomically: true, encoding: .utf8)
            try run(
                [
                    "ca", "-batch", "-config", "\(db)/ca.cnf", "-cert", "\(directory)/ca.pem", "-keyfile",
                    "\(directory)/ca.key",
                    "-in", "\(directory)/\(name).csr", "-out", "\(directory)/\(name).pem", "-extfile", extensions,
                    "-startdate", String(validity[1]), "-enddate", String(validity[3]), "-notext",
                ]
            )
            return
        }
        try run(
            [
                "x509", "-req", "-in", "\(directory)/\(name).csr", "-CA", "\(directory)/ca.pem", "-CAkey",
                "\(directory)/ca.key",
                "-CAcreateserial", "-sha256", "-extfile", extensions, "-out", "\(directory)/\(name).pem",
            ] + validity
        )
    }

    struct CommandFailed: Error, CustomStringConvertible {
        var description: String
    }

    private static func run(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let output = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CommandFailed(
                description: "openssl \(arguments.joined(separator: " ")): \(String(decoding: output, as: UTF8.self))"
            )
        }
    }
}
