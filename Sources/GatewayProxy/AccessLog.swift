package import Logging

/// Writes the one-line-per-request access log through swift-log at
/// `info`. A value; copied into each loop's context.
package struct AccessLog {
    /// What is known about one finished request.
    package struct Entry {
        package var requestID: String
        package var method: String
        /// The path without its query (queries may carry secrets).
        package var path: String
        package var status: Int
        package var bytesIn: Int64
        package var bytesOut: Int64
        package var clientAddress: String
        /// Time from the first byte sent upstream to the response end, if it was forwarded.
        package var upstreamMicroseconds: Int64?
        package var totalMicroseconds: Int64
        /// `forwarded`, `rejected` (gateway answered), or `aborted`.
        package var outcome: String
        package var error: String?
        /// `api_key`, `jwt` or `oauth` when a credential was accepted.
        package var credential: String?
        package var subject: String?
        package var keyID: String?
        /// Time from the head to the authorization decision.
        package var authMicroseconds: Int64?
        /// The part of it spent waiting for the credential store (a cache miss).
        package var storeMicroseconds: Int64?
    }

    let logger: Logger
    let enabled: Bool
    /// Fraction of successful requests written; refusals and errors are always written.
    let sampleRate: Double

    package init(logger: Logger, enabled: Bool, sampleRate: Double = 1) {
        self.logger = logger
        self.enabled = enabled
        self.sampleRate = sampleRate
    }

    /// Whether an entry with `status` is written, given a uniform draw in [0, 1).
    package func shouldRecord(status: Int, draw: @autoclosure () -> Double) -> Bool {
        guard self.enabled else { return false }
        if status >= 400 || self.sampleRate >= 1 { return true }
        return draw() < self.sampleRate
    }

    package func record(_ entry: Entry) {
        guard self.enabled else { return }
        var metadata: Logger.Metadata = [
            "log": "access",
            "request_id": .string(entry.requestID),
            "method": .string(entry.method),
            "path": .string(entry.path),
            "status": .stringConvertible(entry.status),
            "bytes_in": .stringConvertible(entry.bytesIn),
            "bytes_out": .stringConvertible(entry.bytesOut),
            "client": .string(entry.clientAddress),
            "total_us": .stringConvertible(entry.totalMicroseconds),
            "decision": .string(entry.outcome),
        ]
        if let upstream = entry.upstreamMicroseconds {
            metadata["upstream_us"] = .stringConvertible(upstream)
        }
        if let error = entry.error {
            metadata["reason"] = .string(error)
        }
        if let credential = entry.credential {
            metadata["credential"] = .string(credential)
        }
        if let subject = entry.subject {
            metadata["subject"] = .string(subject)
        }
        if let keyID = entry.keyID {
            metadata["key_id"] = .string(keyID)
        }
        if let auth = entry.authMicroseconds {
            metadata["auth_us"] = .stringConvertible(auth)
        }
        if let store = entry.storeMicroseconds {
            metadata["redis_us"] = .stringConvertible(store)
        }
        self.logger.info("request", metadata: metadata)
    }
}
