/// `[auth.jwt]` could not be put in force: a signing key or JWKS file is missing, unreadable
/// or unusable. Its description names the key or file, never its contents. Any thread.
package struct IdentitySetupError: Error, Sendable, CustomStringConvertible {
    package var underlying: any Error

    package var description: String { "\(self.underlying)" }
}
