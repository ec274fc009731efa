/// Why a store could not answer, the same for every store (API keys, sessions, OAuth,
/// browser state): callers map `.unavailable` to 503 with `Retry-After` and `.corrupt` to
/// an unreadable record. A value; any thread.
package enum CredentialStoreError: Error, Hashable, Sendable {
    /// The store could not be asked (connection refused, timeout, back-off).
    case unavailable
    /// The id or hash is already taken.
    case conflict
    /// The owner holds as many keys as it may.
    case limitReached
    /// The stored data is not what the gateway wrote.
    case corrupt(String)
}
