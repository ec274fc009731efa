/// The TLS contexts of a configuration could not be built: each problem names the
/// section and gives OpenSSL's reason (never a passphrase). Any thread.
package struct TLSSetupError: Error, Sendable, CustomStringConvertible {
    package var problems: [String]

    package var description: String { self.problems.joined(separator: "\n") }
}
