import GatewayConfig
import GatewayCore
import GatewayTestSupport
import Testing

@testable import GatewayAuth

/// The same decision with a trace as without, every step named, no secret in it, and no
/// last-use write for an explained request.
@Suite struct AuthenticatorTraceTests {
    private func traced(
        _ h: AuthHarness,
        _ requirement: RouteRequirement = .readDatabases,
        key: String?
    )
        throws -> (Result<Principal?, GatewayError>, DecisionTrace)
    {
        let trace = DecisionTrace()
        let outcome = h.authenticator.authorize(
            requirement,
            authorization: key.map { ["Bearer \($0)"] } ?? [],
            queryCarriesToken: false,
            trace: trace
        )
        return (try h.resolve(outcome), trace)
    }

    @Test func aTracedDecisionIsTheUntracedOneAndNamesItsFailingStep() throws {
        let h = AuthHarness()
        let reader = try h.createKey(scopes: ["read:databases"])
        let revoked = try h.createKey(scopes: ["read:databases"])
        _ = try value(of: h.service.revoke(id: revoked.record.id), on: h.loop)
        let broken = String(reader.key.dropLast()) + (reader.key.hasSuffix("A") ? "B" : "A")
        // The route step is the proxy's to trace (it knows the method and path).
        let cases: [(RouteRequirement, String?, String?)] = [
            (.readDatabases, reader.key, nil),
            (.writeDatabases, reader.key, "scopes"),
            (.readDatabases, revoked.key, "api_key.revocation"),
            (.readDatabases, broken, "api_key.format"),
            (.readDatabases, nil, "credential"),
            (.denied, reader.key, nil),
        ]
        for (requirement, key, failing) in cases {
            // Traced first, then the request path's own answer.
            let (tracedResult, trace) = try traced(h, requirement, key: key)
            let plain = try h.resolve(
                h.authenticator.authorize(
                    requirement,
                    authorization: key.map { ["Bearer \($0)"] } ?? [],
                    queryCarriesToken: false
                )
            )
            #expect(tracedResult.successValue == plain.successValue)
            #expect(tracedResult.error == plain.error)
            #expect(trace.failingStep?.name == failing, "\(trace.steps)")
            for step in trace.steps {
                if let key {
                    #expect(!step.detail.contains(key))
                    #expect(!step.detail.contains(String(key.dropFirst(13))))
                }
            }
        }
    }

    @Test func anExplainedRequestWritesNoLastUse() throws {
        let h = AuthHarness()
        let created = try h.createKey(scopes: ["read:databases"])
        let (result, trace) = try traced(h, key: created.key)
        #expect(result.successValue != nil)
        #expect(trace.steps.contains { $0.name == "api_key.lookup" && $0.detail.contains(created.record.id) })
        // Cached now, and explained again from the cache: still no write.
        _ = try traced(h, key: created.key)
        #expect(h.store.touchCalls.isEmpty)
        #expect(try h.resolve(h.authorize(key: created.key)).successValue != nil)
        #expect(h.store.touchCalls.count == 1)
    }
}
