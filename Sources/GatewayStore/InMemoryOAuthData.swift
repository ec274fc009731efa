import NIOConcurrencyHelpers

/// The process-local OAuth state (run-time clients, authorization codes, consents) shared
/// by every loop's `InMemoryOAuthStore`, behind a lock. Only the demo runs OAuth without
/// Redis (a configuration file with `[oauth]` needs `[redis]`); the lock is taken on the
/// authorize and token endpoints, never on the proxy path. Any thread.
package final class InMemoryOAuthData: Sendable {
    private enum CodeState: Sendable {
        case live
        /// Redeemed once; what the token endpoint issued from it, once recorded.
        case redeemed(CodeIssuance?)
        /// Presented again after its redemption.
        case reused(CodeIssuance?)
    }

    private struct Code: Sendable {
        var record: AuthorizationCodeRecord
        var state: CodeState
    }

    private struct Storage: Sendable {
        var clients: [String: OAuthClient] = [:]
        var codes: [String: Code] = [:]
        var consents: [String: [String]] = [:]
        /// Access tokens issued under each refresh family, with how long to keep them.
        var grantTokens: [String: (tokens: Set<GrantAccessToken>, keepUntil: Int64)] = [:]
    }

    /// Codes are kept this long past their expiry once redeemed, so a late second
    /// redemption is still recognised as reuse (as on Redis).
    private static let usedCodeGrace: Int64 = 600
    /// Bounds the map: expired codes are dropped when it grows past this.
    private static let pruneThreshold = 10_000

    private let storage = NIOLockedValueBox(Storage())

    package init() {}

    func client(id: String) -> OAuthClient? { self.storage.withLockedValue { $0.clients[id] } }

    func listClients() -> [OAuthClient] {
        self.storage.withLockedValue { Array($0.clients.values) }.sorted { $0.id < $1.id }
    }

    func createClient(_ client: OAuthClient) -> Bool {
        self.storage.withLockedValue { storage in
            guard storage.clients[client.id] == nil else { return false }
            storage.clients[client.id] = client
            return true
        }
    }

    func replaceClient(_ client: OAuthClient) -> Bool {
        self.storage.withLockedValue { storage in
            guard storage.clients[client.id] != nil else { return false }
            storage.clients[client.id] = client
            return true
        }
    }

    func removeClient(id: String) -> Bool {
        self.storage.withLockedValue { $0.clients.removeValue(forKey: id) != nil }
    }

    func storeCode(codeHash: String, record: AuthorizationCodeRecord, now: Int64) -> Bool {
        self.storage.withLockedValue { storage in
            if storage.codes.count > Self.pruneThreshold {
                storage.codes = storage.codes.filter { $0.value.record.expiresAt + Self.usedCodeGrace > now }
            }
            guard storage.codes[codeHash] == nil else { return false }
            storage.codes[codeHash] = Code(record: record, state: .live)
            return true
        }
    }

    func redeemCode(codeHash: String, now: Int64) -> CodeRedemption {
        self.storage.withLockedValue { storage in
            guard var code = storage.codes[codeHash] else { return .invalid }
            switch code.state {
            case .live:
                guard code.record.expiresAt > now else {
                    storage.codes[codeHash] = nil
                    return .invalid
                }
                code.state = .redeemed(nil)
                storage.codes[codeHash] = code
                return .redeemed(code.record)
            case .redeemed(let issued), .reused(let issued):
                guard code.record.expiresAt + Self.usedCodeGrace > now else {
                    storage.codes[codeHash] = nil
                    return .invalid
                }
                code.state = .reused(issued)
                storage.codes[codeHash] = code
                return .reused(code.record, issued: issued)
            }
        }
    }

    func recordIssued(fromCode codeHash: String, issuance: CodeIssuance) -> Bool {
        self.storage.withLockedValue { storage in
            guard var code = storage.codes[codeHash] else { return false }
            switch code.state {
            case .redeemed:
                code.state = .redeemed(issuance)
                storage.codes[codeHash] = code
                return true
            case .live, .reused:
                return false
            }
        }
    }

    func recordGrantAccessToken(family: String, token: GrantAccessToken, keepUntil: Int64, now: Int64) {
        self.storage.withLockedValue { storage in
            if storage.grantTokens.count > Self.pruneThreshold {
                storage.grantTokens = storage.grantTokens.filter { $0.value.keepUntil > now }
            }
            var entry = storage.grantTokens[family] ?? (tokens: [], keepUntil: keepUntil)
            entry.tokens.insert(token)
            entry.keepUntil = max(entry.keepUntil, keepUntil)
            storage.grantTokens[family] = entry
        }
    }

    func takeGrantAccessTokens(family: String) -> [GrantAccessToken] {
        self.storage.withLockedValue { Array($0.grantTokens.removeValue(forKey: family)?.tokens ?? []) }
    }

    func storeConsent(userID: String, clientID: String, scopes: [String]) {
        self.storage.withLockedValue { $0.consents[Self.consentKey(userID, clientID)] = Array(Set(scopes)).sorted() }
    }

    func consent(userID: String, clientID: String) -> [String]? {
        self.storage.withLockedValue { $0.consents[Self.consentKey(userID, clientID)] }
    }

    func revokeConsent(userID: String, clientID: String) {
        self.storage.withLockedValue { _ = $0.consents.removeValue(forKey: Self.consentKey(userID, clientID)) }
    }

    private static func consentKey(_ userID: String, _ clientID: String) -> String { userID + "\u{0}" + clientID }
}
