package import GatewayCore
package import GatewayRateLimit

/// What `explain` found for one request: every step the decision code took, the principal,
/// the rate-limit buckets it would draw from (as they stand, no token taken) and the final
/// decision with the exact status, `error` code and `WWW-Authenticate` the gateway would
/// answer. Carries no secret: a token appears only as a SHA-256 prefix. A value; any thread.
package struct ExplainReport: Sendable {
    /// The `version` member of the JSON document (docs/operations.md).
    package static let schemaVersion = 1

    package var method: String
    package var path: String
    package var normalizedPath: String?
    package var clientAddress: String
    package var tokenFingerprint: String?
    package var steps: [DecisionTrace.Step]
    package var principal: Principal?
    package var rateLimits: [(key: String, decision: RateLimitDecision)]
    /// nil: allowed.
    package var error: GatewayError?
    /// Where an allowed request goes: `upstream` or `gateway` (a built-in endpoint).
    package var destination: String?

    package var allowed: Bool { self.error == nil }
    package var failingStep: String? { self.steps.first { $0.result == .fail }?.name }
    package var wwwAuthenticate: String? { self.error?.headers.first { $0.name == "WWW-Authenticate" }?.value }

    /// The report as one JSON document (schema in docs/operations.md).
    package var json: String {
        var out = "{\"version\":\(Self.schemaVersion),\"request\":{\"method\":"
        JSONText.appendQuoted(self.method, to: &out)
        out += ",\"path\":"
        JSONText.appendQuoted(self.path, to: &out)
        out += ",\"normalized_path\":"
        Self.appendOptional(self.normalizedPath, to: &out)
        out += ",\"client_address\":"
        JSONText.appendQuoted(self.clientAddress, to: &out)
        out += ",\"token_sha256_prefix\":"
        Self.appendOptional(self.tokenFingerprint, to: &out)
        out += "},\"steps\":["
        for (index, step) in self.steps.enumerated() {
            if index > 0 { out += "," }
            out += "{\"name\":"
            JSONText.appendQuoted(step.name, to: &out)
            out += ",\"result\":"
            JSONText.appendQuoted(step.result.rawValue, to: &out)
            out += ",\"detail\":"
            JSONText.appendQuoted(step.detail, to: &out)
            out += "}"
        }
        out += "],\"principal\":"
        if let principal {
            out += "{\"kind\":"
            JSONText.appendQuoted(principal.kind.rawValue, to: &out)
            out += ",\"subject\":"
            JSONText.appendQuoted(principal.subject, to: &out)
            out += ",\"scopes\":["
            for (index, scope) in principal.scopes.enumerated() {
                if index > 0 { out += "," }
                JSONText.appendQuoted(scope, to: &out)
            }
            out += "],\"client_id\":"
            Self.appendOptional(principal.clientID, to: &out)
            out += ",\"key_id\":"
            Self.appendOptional(principal.keyID, to: &out)
            out += ",\"issuer\":"
            Self.appendOptional(principal.issuer, to: &out)
            out += ",\"expires_at\":\(principal.expiresAt.map(String.init) ?? "null")}"
        } else {
            out += "null"
        }
        out += ",\"rate_limits\":["
        for (index, entry) in self.rateLimits.enumerated() {
            if index > 0 { out += "," }
            let decision = entry.decision
            out += "{\"policy\":"
            JSONText.appendQuoted(decision.policy, to: &out)
            out += ",\"key\":"
            JSONText.appendQuoted(entry.key, to: &out)
            out +=
                ",\"limit\":\(decision.limit),\"remaining\":\(decision.remaining),\"would_admit\":\(decision.allowed)"
            out += ",\"retry_after\":\(decision.retryAfterSeconds)}"
        }
        out += "],\"decision\":{\"outcome\":"
        JSONText.appendQuoted(self.allowed ? "allow" : "deny", to: &out)
        out += ",\"status\":\(self.error.map { String($0.status) } ?? "null"),\"error\":"
        Self.appendOptional(self.error?.code, to: &out)
        out += ",\"error_description\":"
        Self.appendOptional(self.error?.description, to: &out)
        out += ",\"www_authenticate\":"
        Self.appendOptional(self.wwwAuthenticate, to: &out)
        out += ",\"failing_step\":"
        Self.appendOptional(self.allowed ? nil : self.failingStep, to: &out)
        out += ",\"destination\":"
        Self.appendOptional(self.destination, to: &out)
        out += "}}\n"
        return out
    }

    /// The report for a person: one line per step, then the decision.
    package var text: String {
        var out = "explain \(self.method) \(self.path)  (client \(self.clientAddress))\n"
        if let tokenFingerprint { out += "token: sha256 \(tokenFingerprint)…\n" }
        let width = max(12, self.steps.map(\.name.count).max() ?? 0)
        for step in self.steps {
            let mark: String
            switch step.result {
            case .pass: mark = "ok  "
            case .fail: mark = "FAIL"
            case .info: mark = "  - "
            }
            out +=
                "  \(mark) \(step.name + String(repeating: " ", count: max(0, width - step.name.count)))  \(step.detail)\n"
        }
        if let error {
            out += "decision: DENY \(error.status) \(error.code)"
            if let failingStep { out += " (failing step: \(failingStep))" }
            out += "\n  \(error.description)\n"
            if let wwwAuthenticate { out += "  WWW-Authenticate: \(wwwAuthenticate)\n" }
        } else {
            out +=
                "decision: ALLOW (\(self.destination == "gateway" ? "answered by the gateway" : "forwarded upstream"))\n"
        }
        return out
    }

    private static func appendOptional(_ value: String?, to out: inout String) {
        if let value { JSONText.appendQuoted(value, to: &out) } else { out += "null" }
    }
}
