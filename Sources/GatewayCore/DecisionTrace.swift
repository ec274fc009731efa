/// The steps one explained request went through (`dbaudit-gateway explain`, admin
/// `POST /explain`): which check ran, what it saw, and whether it passed. The request path
/// passes nil and so builds none of this; the decision code writes to it through optional
/// chaining, whose arguments are not even evaluated without a trace. Owned by the one
/// explanation that created it and touched only on the event loop running that explanation.
package final class DecisionTrace {
    /// One check and what it came to.
    package struct Step: Sendable, Hashable {
        package enum Result: String, Sendable {
            case pass, fail, info
        }

        /// A stable name (`path`, `route`, `credential`, `api_key.lookup`, `jwt.claim.aud`, ...).
        package var name: String
        package var result: Result
        /// What was seen and the rule applied; never a secret.
        package var detail: String
    }

    package private(set) var steps: [Step] = []

    package init() {}

    package func pass(_ name: String, _ detail: String) {
        self.steps.append(Step(name: name, result: .pass, detail: detail))
    }

    package func fail(_ name: String, _ detail: String) {
        self.steps.append(Step(name: name, result: .fail, detail: detail))
    }

    package func info(_ name: String, _ detail: String) {
        self.steps.append(Step(name: name, result: .info, detail: detail))
    }

    /// The first failing step, which the final decision names.
    package var failingStep: Step? { self.steps.first { $0.result == .fail } }
}
