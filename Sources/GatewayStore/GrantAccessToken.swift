/// An access token issued under a refresh family: a JWT by its `jti` and `exp`, or an
/// opaque token by its hash. Stored as `j <exp> <jti>` or `o <hash>`.
package enum GrantAccessToken: Sendable, Hashable {
    case jwt(tokenID: String, expiresAt: Int64)
    case opaque(hash: String)

    var stored: String {
        switch self {
        case .jwt(let id, let expiresAt): "j \(expiresAt) \(id)"
        case .opaque(let hash): "o \(hash)"
        }
    }

    init?(stored: String) {
        let parts = stored.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        if parts.count == 3, parts[0] == "j", let expiresAt = Int64(parts[1]), !parts[2].isEmpty,
            parts[2].utf8.count <= 128
        {
            self = .jwt(tokenID: String(parts[2]), expiresAt: expiresAt)
        } else if parts.count == 2, parts[0] == "o", parts[1].utf8.count == 64 {
            self = .opaque(hash: String(parts[1]))
        } else {
            return nil
        }
    }
}
