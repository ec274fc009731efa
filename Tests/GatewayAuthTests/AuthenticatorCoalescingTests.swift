import GatewayCore
import GatewayTestSupport
import NIOCore
import Testing

@testable import GatewayAuth

@Suite struct AuthenticatorCoalescingTests {
    @Test func concurrentMissesForOneKeyAskTheStoreOnce() throws {
        let h = AuthHarness()
        let created = try value(
            of: h.service.create(
                name: "k",
                scopes: ["read:databases"],
                expiresInSeconds: nil,
                test: false,
                owner: "o",
                grantor: nil,
                now: AuthHarness.startTime
            ),
            on: h.loop
        )
        h.store.holdLookups = true
        let before = h.store.apiKeyCalls
        var futures: [EventLoopFuture<Principal>] = []
        for _ in 0..<5 {
            guard
                case .pending(let future) = h.authenticator.authorize(
                    .readDatabases,
                    authorization: ["Bearer \(created.key)"],
                    queryCarriesToken: false
                )
            else {
                Issue.record("a cold key must wait for the store")
                return
            }
            futures.append(future)
        }
        #expect(h.store.apiKeyCalls == before + 1)
        #expect(h.authenticator.coalescedLookups == 4)
        h.store.releaseHeldLookups()
        for future in futures {
            #expect(try value(of: future, on: h.loop).keyID == created.record.id)
        }
        // Answered: the next lookup of another key is a fresh one, and this key is cached.
        guard
            case .allow = h.authenticator.authorize(
                .readDatabases,
                authorization: ["Bearer \(created.key)"],
                queryCarriesToken: false
            )
        else {
            Issue.record("the answer was not cached")
            return
        }
        #expect(h.store.apiKeyCalls == before + 1)
    }

    @Test func aFailedLookupIsNotRememberedAsInFlight() throws {
        let h = AuthHarness()
        h.store.failure = CredentialStoreErrorStub.unavailable
        let key = APIKeyFormat.generate(test: false)
        for _ in 0..<2 {
            guard
                case .pending(let future) = h.authenticator.authorize(
                    .readDatabases,
                    authorization: ["Bearer \(key)"],
                    queryCarriesToken: false
                )
            else {
                Issue.record("expected a store lookup")
                return
            }
            _ = try failure(of: future, on: h.loop)
        }
        #expect(h.store.apiKeyCalls == 2)
    }
}

enum CredentialStoreErrorStub: Error { case unavailable }
