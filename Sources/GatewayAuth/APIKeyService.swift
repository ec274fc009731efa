import Foundation
package import GatewayCore
import GatewayCrypto
package import GatewayStore
package import NIOCore

/// Creating, listing and revoking API keys: the one implementation behind the CLI
/// (`keys create|list|revoke`) and the HTTP API (`/v1/api-keys`). Works on one event
/// loop's store; touched only on that loop.
package struct APIKeyService {
    package struct Created: Sendable {
        /// The key itself: shown once, never stored.
        package var key: String
        package var record: APIKeyRecord
    }

    /// Why a creation request was refused (400 or 403 for the HTTP API).
    package enum RequestError: Error, Hashable, Sendable {
        case invalid(String)
        case scopeNotHeld(String)
    }

    package static let maximumLifetimeSeconds: Int64 = 5 * 366 * 86_400

    private let store: any CredentialStore
    private let hash: (String) -> String

    package init(store: any CredentialStore, hash: @escaping (String) -> String) {
        self.store = store
        self.hash = hash
    }

    /// Validates the request, then creates and stores a key.
    /// - Parameter grantor: the caller; it can only grant scopes it holds itself (nil: the
    ///   operator on the CLI, who may grant any scope).
    /// - Parameter maxKeysPerOwner: refuse (`CredentialStoreError.limitReached`) once the
    ///   owner holds this many unrevoked keys; nil for no cap (the operator's CLI).
    package func create(
        name: String,
        scopes: [String],
        expiresInSeconds: Int64?,
        test: Bool,
        owner: String,
        grantor: Principal?,
        now: Int64,
        rateLimit: String? = nil,
        maxKeysPerOwner: Int? = nil
    ) -> EventLoopFuture<Created> {
        let eventLoop = self.store.eventLoop
        let trimmed = name.trimmingCharacters(in: .whitespaces)
        let printable = trimmed.unicodeScalars.allSatisfy { scalar in
            // C0, DEL, C1 and the Unicode line/paragraph separators.
            !(scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028
                || scalar.value == 0x2029)
        }
        guard !trimmed.isEmpty, trimmed.count <= 100, trimmed.utf8.count <= 400, printable else {
            return eventLoop.makeFailedFuture(RequestError.invalid("name must be 1-100 printable characters"))
        }
        guard !scopes.isEmpty, scopes.count <= Scopes.all.count else {
            return eventLoop.makeFailedFuture(RequestError.invalid("scopes must list at least one scope"))
        }
        for scope in scopes where !Scopes.all.contains(scope) {
            return eventLoop.makeFailedFuture(RequestError.invalid("unknown scope \"\(scope.prefix(40))\""))
        }
        if let grantor, let missing = scopes.first(where: { !grantor.grants($0) }) {
            return eventLoop.makeFailedFuture(RequestError.scopeNotHeld(missing))
        }
        if let expiresInSeconds, expiresInSeconds <= 0 || expiresInSeconds > Self.maximumLifetimeSeconds {
            return eventLoop.makeFailedFuture(RequestError.invalid("expires_in must be between 1 second and 5 years"))
        }
        let key = APIKeyFormat.generate(test: test)
        let record = APIKeyRecord(
            id: "key_" + Hex.encode(SecureRandom.bytes(8)),
            name: trimmed,
            scopes: Array(Set(scopes)).sorted(),
            owner: owner,
            createdAt: now,
            expiresAt: expiresInSeconds.map { now + $0 },
            last4: String(key.suffix(4)),
            environment: test ? "test" : "live",
            rateLimit: rateLimit
        )
        return self.store.createAPIKey(record, hash: self.hash(key), maxPerOwner: maxKeysPerOwner).map {
            Created(key: key, record: record)
        }
    }

    /// Every key (the operator's CLI).
    package func list() -> EventLoopFuture<[APIKeyRecord]> {
        self.store.listAPIKeys()
    }

    /// One page: every key (`owner` nil) or one owner's unrevoked keys.
    package func list(owner: String?, offset: Int, limit: Int) -> EventLoopFuture<APIKeyPage> {
        self.store.listAPIKeys(owner: owner, offset: offset, limit: limit)
    }

    /// The key with this id, or nil (also for ids that cannot be key ids).
    package func record(id: String) -> EventLoopFuture<APIKeyRecord?> {
        guard Self.isWellFormedID(id) else { return self.store.eventLoop.makeSucceededFuture(nil) }
        return self.store.apiKey(id: id)
    }

    private static func isWellFormedID(_ id: String) -> Bool {
        id.hasPrefix("key_") && id.utf8.count == 20
    }

    package func revoke(id: String) -> EventLoopFuture<APIKeyRecord?> {
        guard Self.isWellFormedID(id) else {
            return self.store.eventLoop.makeSucceededFuture(nil)
        }
        return self.store.revokeAPIKey(id: id)
    }

    /// `90d`, `12h`, `30m`, `3600s`, or plain seconds.
    package static func parseLifetime(_ text: String) -> Int64? {
        let digits = text.prefix(while: { $0.isASCII && $0.isNumber })
        guard !digits.isEmpty, digits.count <= 10, let amount = Int64(digits), amount > 0 else { return nil }
        switch text.dropFirst(digits.count) {
        case "", "s": return amount
        case "m": return amount * 60
        case "h": return amount * 3600
        case "d": return amount * 86_400
        default: return nil
        }
    }
}
