/// A person who may log in (`users add`). The password is kept only as a scrypt hash in
/// the PHC-like form `scrypt$ln=15,r=8,p=1$<salt b64>$<hash b64>`. Stored as JSON.
package struct UserRecord: Codable, Sendable, Hashable {
    package var id: String
    /// Lower-cased e-mail address, the login name.
    package var email: String
    package var scopes: [String]
    package var passwordHash: String
    package var disabled: Bool
    package var createdAt: Int64
    /// The `[[sso.providers]]` name for a user created at sign-in through a provider; nil
    /// for a password user. Such a user's `email` is its key (see `SSOUserKey`), never a
    /// password login, and `passwordHash` holds no hash.
    package var provider: String?
    /// The address the provider vouched for at the last sign-in (provider users only).
    package var contactEmail: String?

    package init(
        id: String,
        email: String,
        scopes: [String],
        passwordHash: String,
        disabled: Bool = false,
        createdAt: Int64
    ) {
        self.id = id
        self.email = email
        self.scopes = scopes
        self.passwordHash = passwordHash
        self.disabled = disabled
        self.createdAt = createdAt
    }

    /// What pages show as the user's address: the provider's e-mail, else the login name.
    package var displayEmail: String { self.contactEmail ?? self.email }

    enum CodingKeys: String, CodingKey {
        case id, email, scopes, disabled, provider
        case contactEmail = "contact_email"
        case passwordHash = "password_hash"
        case createdAt = "created_at"
    }
}
