import GatewayRedis
import Testing

@testable import GatewayStore

/// `RedisStore`, the part every Redis-backed store shares: how each store reads Redis's
/// error replies, the size bound on records read back, and how records are written.
@Suite struct RedisStoreTests {
    private let wrongType = RedisClientError.server("WRONGTYPE Operation against a key holding the wrong kind of value")
    private let outOfMemory = RedisClientError.server("OOM command not allowed when used memory > 'maxmemory'.")

    private func isUnavailable(_ error: any Error) -> Bool {
        if case CredentialStoreError.unavailable = error { return true }
        return false
    }

    private func isCorrupt(_ error: any Error) -> Bool {
        if case CredentialStoreError.corrupt = error { return true }
        return false
    }

    @Test func apiKeyAndOAuthStoresReportARefusingRedisAsCorruptUnlessTransient() {
        for mapped in [RedisCredentialStore.mapped, RedisOAuthStore.mapped] {
            #expect(isCorrupt(mapped(wrongType)))
            #expect(isUnavailable(mapped(outOfMemory)))
            #expect(isUnavailable(mapped(RedisClientError.timeout)))
            #expect(mapped(CredentialStoreError.conflict) as? CredentialStoreError == .conflict)
        }
    }

    @Test func sessionBrowserAndTokenStoresTreatEveryRedisErrorAsAnOutage() {
        for mapped in [
            RedisSessionStore.mapped, RedisBrowserStateStore.mapped, RedisOpaqueAccessTokenStore.mapped,
            RedisIntrospectionCache.mapped,
        ] {
            #expect(isUnavailable(mapped(wrongType)))
            #expect(isUnavailable(mapped(outOfMemory)))
            #expect(isUnavailable(mapped(RedisClientError.timeout)))
            #expect(mapped(CredentialStoreError.conflict) as? CredentialStoreError == .conflict)
        }
    }

    @Test func recordsReadBackAreBoundedPerStore() throws {
        let scopes = Array(repeating: "read:databases", count: 1200)  // about 20 KiB of JSON
        let json = Array(try #require(RedisSessionStore.encode(scopes)).utf8)
        #expect(json.count > 16 * 1024 && json.count < 64 * 1024)
        #expect(try RedisSessionStore.decode([String].self, json) == scopes)
        #expect(throws: CredentialStoreError.self) { try RedisOpaqueAccessTokenStore.decode([String].self, json) }
        #expect(throws: CredentialStoreError.self) { try RedisIntrospectionCache.decode([String].self, json) }
        let large = Array(try #require(RedisSessionStore.encode(Array(repeating: "read:databases", count: 4000))).utf8)
        #expect(throws: CredentialStoreError.self) { try RedisSessionStore.decode([String].self, large) }
        #expect(throws: CredentialStoreError.self) { try RedisCredentialStore.decode([String].self, Array("{".utf8)) }
    }

    @Test func theOAuthStoreWritesSortedKeysAndPlainSlashes() {
        let value = ["b": "https://app.example/cb", "a": "x"]
        #expect(RedisOAuthStore.encode(value) == #"{"a":"x","b":"https://app.example/cb"}"#)
        #expect(RedisSessionStore.encode(["b": "/"]) == #"{"b":"\/"}"#)
    }
}
