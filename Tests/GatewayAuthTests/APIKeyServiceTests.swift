import GatewayCore
import GatewayStore
import GatewayTestSupport
import NIOCore
import NIOEmbedded
import Testing

@testable import GatewayAuth

private let now: Int64 = 1_700_000_000

/// A service over a counting in-memory store on an embedded loop.
private struct ServiceHarness {
    let loop = EmbeddedEventLoop()
    let store: CountingStore
    let service: APIKeyService

    init() {
        self.store = CountingStore(InMemoryCredentialStore(eventLoop: self.loop, data: InMemoryCredentialData()))
        self.service = APIKeyService(store: self.store, hash: { "hash-of-" + $0 })
    }

    func create(
        name: String = "ci",
        scopes: [String] = ["read:databases"],
        expiresIn: Int64? = nil,
        test: Bool = false,
        grantor: Principal? = nil
    ) -> EventLoopFuture<APIKeyService.Created> {
        self.service.create(
            name: name,
            scopes: scopes,
            expiresInSeconds: expiresIn,
            test: test,
            owner: "alice",
            grantor: grantor,
            now: now
        )
    }

    /// The request error of a creation that must fail.
    func refusal(
        name: String = "ci",
        scopes: [String] = ["read:databases"],
        expiresIn: Int64? = nil,
        grantor: Principal? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> APIKeyService.RequestError {
        let error = try failure(
            of: self.create(name: name, scopes: scopes, expiresIn: expiresIn, grantor: grantor),
            on: self.loop,
            sourceLocation: sourceLocation
        )
        return try #require(error as? APIKeyService.RequestError, "\(error)", sourceLocation: sourceLocation)
    }
}

private func isInvalid(_ error: APIKeyService.RequestError) -> Bool {
    if case .invalid = error { return true }
    return false
}

@Suite struct APIKeyServiceTests {
    // MARK: a successful creation

    @Test func createStoresARecordUnderTheKeysHash() throws {
        let h = ServiceHarness()
        let created = try value(
            of: h.create(
                name: "  nightly export  ",
                scopes: ["read:reports", "admin", "read:reports"],
                expiresIn: 3600
            ),
            on: h.loop
        )
        #expect(APIKeyFormat.problem(with: created.key) == nil)
        #expect(created.key.hasPrefix("dbaudit_live_"))
        let record = created.record
        #expect(record.name == "nightly export")
        #expect(record.scopes == ["admin", "read:reports"])
        #expect(record.owner == "alice")
        #expect(record.createdAt == now)
        #expect(record.expiresAt == now + 3600)
        #expect(!record.revoked)
        #expect(record.lastUsedAt == nil)
        #expect(record.last4 == String(created.key.suffix(4)))
        #expect(record.environment == "live")
        #expect(record.id.hasPrefix("key_"))
        #expect(record.id.utf8.count == 20)
        #expect(record.id.utf8.dropFirst(4).allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) })

        // Stored under hash(key), and only there.
        #expect(try value(of: h.store.inner.apiKey(hash: "hash-of-" + created.key), on: h.loop) == record)
        #expect(try value(of: h.store.inner.apiKey(hash: created.key), on: h.loop) == nil)
        #expect(h.store.createCalls == 1)
    }

    @Test func testKeysAndKeysWithoutExpiry() throws {
        let h = ServiceHarness()
        let created = try value(of: h.create(test: true), on: h.loop)
        #expect(created.key.hasPrefix("dbaudit_test_"))
        #expect(created.record.environment == "test")
        #expect(created.record.expiresAt == nil)
    }

    @Test func everyCreationHasItsOwnKeyAndID() throws {
        let h = ServiceHarness()
        let created = try (0..<20).map { _ in try value(of: h.create(), on: h.loop) }
        #expect(Set(created.map(\.key)).count == 20)
        #expect(Set(created.map(\.record.id)).count == 20)
        #expect(try value(of: h.service.list(), on: h.loop).count == 20)
    }

    // MARK: validation

    @Test(arguments: ["", " ", "   ", "\t"])
    func emptyNameIsRefused(name: String) throws {
        let h = ServiceHarness()
        #expect(isInvalid(try h.refusal(name: name)))
        #expect(h.store.createCalls == 0)
    }

    @Test func nameLengthLimit() throws {
        let h = ServiceHarness()
        #expect(try value(of: h.create(name: String(repeating: "n", count: 100)), on: h.loop).record.name.count == 100)
        #expect(isInvalid(try h.refusal(name: String(repeating: "n", count: 101))))
        #expect(isInvalid(try h.refusal(name: String(repeating: "n", count: 10_000))))
    }

    @Test(arguments: ["a\u{0}b", "a\nb", "line\r\n", "a\u{1B}[31mred", "del\u{7F}", "tab\tinside", "\u{1F}"])
    func nameWithControlCharactersIsRefused(name: String) throws {
        let h = ServiceHarness()
        #expect(isInvalid(try h.refusal(name: name)))
        #expect(h.store.createCalls == 0)
    }

    @Test(arguments: ["a\u{85}b", "x\u{9B}31mred", "\u{80}"])
    func nameWithC1ControlCharactersIsRefused(name: String) throws {
        // U+0080-U+009F are control characters (general category Cc) just like U+0000-U+001F;
        // the refusal message promises "1-100 printable characters".
        let h = ServiceHarness()
        let result = completion(of: h.create(name: name), on: h.loop)
        switch result {
        case .failure(APIKeyService.RequestError.invalid): break
        default: Issue.record("accepted: \(String(describing: result))")
        }
    }

    @Test func printableUnicodeNamesAreAccepted() throws {
        let h = ServiceHarness()
        for name in ["Café ☕️", "ключ", "a \"quoted\" \\ name", "<script>"] {
            #expect(try value(of: h.create(name: name), on: h.loop).record.name == name)
        }
    }

    @Test func emptyScopesAreRefused() throws {
        let h = ServiceHarness()
        #expect(isInvalid(try h.refusal(scopes: [])))
    }

    @Test(arguments: [
        ["read:everything"], ["read:databases", "READ:DATABASES"], [""], ["admin", "root"], ["read:databases "],
    ])
    func unknownScopesAreRefused(scopes: [String]) throws {
        let h = ServiceHarness()
        let error = try h.refusal(scopes: scopes)
        #expect(isInvalid(error))
        #expect(h.store.createCalls == 0)
    }

    @Test func unknownScopeIsNamedButTruncated() throws {
        let h = ServiceHarness()
        let error = try h.refusal(scopes: [String(repeating: "x", count: 500)])
        guard case .invalid(let message) = error else {
            Issue.record("\(error)")
            return
        }
        #expect(message.contains(String(repeating: "x", count: 40)))
        #expect(!message.contains(String(repeating: "x", count: 41)))
    }

    @Test func everyKnownScopeCanBeGranted() throws {
        let h = ServiceHarness()
        let created = try value(of: h.create(scopes: Scopes.all), on: h.loop)
        #expect(created.record.scopes == Scopes.all.sorted())
    }

    @Test(arguments: [Int64(0), -1, -86_400, Int64.min, APIKeyService.maximumLifetimeSeconds + 1, Int64.max])
    func lifetimeOutOfRangeIsRefused(seconds: Int64) throws {
        let h = ServiceHarness()
        #expect(isInvalid(try h.refusal(expiresIn: seconds)))
        #expect(h.store.createCalls == 0)
    }

    @Test func lifetimeLimits() throws {
        let h = ServiceHarness()
        #expect(APIKeyService.maximumLifetimeSeconds >= 5 * 365 * 86_400)
        #expect(APIKeyService.maximumLifetimeSeconds <= 5 * 366 * 86_400)
        #expect(try value(of: h.create(expiresIn: 1), on: h.loop).record.expiresAt == now + 1)
        let longest = try value(of: h.create(expiresIn: APIKeyService.maximumLifetimeSeconds), on: h.loop)
        #expect(longest.record.expiresAt == now + APIKeyService.maximumLifetimeSeconds)
    }

    // MARK: grantors

    @Test func grantorCannotGrantScopesItLacks() throws {
        let h = ServiceHarness()
        let grantor = Principal(subject: "bob", kind: .apiKey, scopes: ["read:databases", "read:logs"])
        #expect(try h.refusal(scopes: ["write:databases"], grantor: grantor) == .scopeNotHeld("write:databases"))
        #expect(
            try h.refusal(scopes: ["read:logs", "admin", "read:alerts"], grantor: grantor) == .scopeNotHeld("admin")
        )
        #expect(h.store.createCalls == 0)
        // A subset of its own scopes is fine.
        let created = try value(of: h.create(scopes: ["read:logs"], grantor: grantor), on: h.loop)
        #expect(created.record.scopes == ["read:logs"])
    }

    @Test func adminGrantorCanGrantAnything() throws {
        let h = ServiceHarness()
        let admin = Principal(subject: "root", kind: .apiKey, scopes: ["admin"])
        let created = try value(of: h.create(scopes: Scopes.all, grantor: admin), on: h.loop)
        #expect(created.record.scopes == Scopes.all.sorted())
    }

    @Test func noGrantorIsTheOperator() throws {
        let h = ServiceHarness()
        #expect(try value(of: h.create(scopes: ["admin"], grantor: nil), on: h.loop).record.scopes == ["admin"])
    }

    @Test func grantorWithoutScopesCannotGrantAny() throws {
        let h = ServiceHarness()
        let nobody = Principal(subject: "eve", kind: .apiKey, scopes: [])
        #expect(try h.refusal(scopes: ["read:logs"], grantor: nobody) == .scopeNotHeld("read:logs"))
    }

    // MARK: store errors, list and revoke

    @Test func storeErrorsPassThrough() throws {
        let h = ServiceHarness()
        h.store.failure = CredentialStoreError.unavailable
        let error = try failure(of: h.create(), on: h.loop)
        #expect(error as? CredentialStoreError == .unavailable)
    }

    @Test func revokeMarksTheRecord() throws {
        let h = ServiceHarness()
        let created = try value(of: h.create(), on: h.loop)
        let revoked = try #require(try value(of: h.service.revoke(id: created.record.id), on: h.loop))
        #expect(revoked.revoked)
        #expect(revoked.id == created.record.id)
        #expect(try value(of: h.service.list(), on: h.loop).first?.revoked == true)
        #expect(try value(of: h.store.inner.apiKey(hash: "hash-of-" + created.key), on: h.loop)?.revoked == true)
    }

    @Test func revokeOfAnUnknownIDIsNil() throws {
        let h = ServiceHarness()
        #expect(try value(of: h.service.revoke(id: "key_0123456789abcdef"), on: h.loop) == nil)
        #expect(h.store.revokeCalls == 1)
    }

    @Test(arguments: [
        "", "key_", "key_123", "abc", "KEY_0123456789abcdef", "key_0123456789abcdef0", "xey_0123456789abcdef",
    ])
    func revokeOfAMalformedIDDoesNotAskTheStore(id: String) throws {
        let h = ServiceHarness()
        #expect(try value(of: h.service.revoke(id: id), on: h.loop) == nil)
        #expect(h.store.revokeCalls == 0)
    }

    // MARK: parseLifetime

    @Test(
        arguments: [
            ("90d", 90 * 86_400),
            ("1d", 86_400),
            ("12h", 43_200),
            ("30m", 1_800),
            ("3600", 3_600),
            ("3600s", 3_600),
            ("1", 1),
            ("1s", 1),
            ("0090d", 90 * 86_400),
            ("9999999999", 9_999_999_999),
        ] as [(String, Int64)]
    )
    func parsesLifetimes(text: String, seconds: Int64) {
        #expect(APIKeyService.parseLifetime(text) == seconds)
    }

    @Test(arguments: [
        "", "1w", "-1", "1.5h", "0", "0d", "d", "s", "90 d", " 90d", "90d ", "90dd", "90D", "3600S", "+5",
        "1h30m", "12345678901", "١٢", "1e3", "0x10", "90days",
    ])
    func refusesBadLifetimes(text: String) {
        #expect(APIKeyService.parseLifetime(text) == nil, "\(text)")
    }
}
