import GatewayCrypto

/// The login name (`UserRecord.email`, the user store's key) of a user signed in through a
/// provider: a hash of the provider's `sub` at `<provider>.sso.invalid`. The key is the
/// provider and the subject, never the e-mail address, so one provider cannot take over a
/// user of another (or a password user) by claiming the same address, and the reserved
/// `.invalid` domain can never be a real address to sign in with a password. Pure; any thread.
package enum SSOUserKey {
    package static func key(provider: String, subject: String) -> String {
        let digest = Hex.encode(Digest.sha256.hash(subject.utf8))
        return String(digest.prefix(32)) + "@" + provider + ".sso.invalid"
    }
}
