/// The Redis key names of the API keys, in one of two layouts.
///
/// - One slot (a single Redis, Sentinel, or a cluster whose `key_prefix` carries a hash tag
///   of its own): every name under the store prefix `P`, as the gateway always wrote them.
/// - Spread (a cluster): the record `K apikey:{<hash>}` and the last use `K apikey-used:{<id>}`
///   under the plain `key_prefix` `K`, each with a hash tag of its own, so the keys the
///   request path reads and writes spread over every slot and primary; the id → hash
///   pointer and the indexes stay under `P` (the `{gw}` slot), where one script keeps them
///   together.
///
/// Immutable value; any thread.
struct APIKeyKeys: Sendable {
    /// `P`: the indexes, the id → hash pointers, the indexed marker.
    let indexPrefix: String
    /// `K` in the spread layout; nil in the one-slot layout.
    let spreadPrefix: String?

    /// Records and last uses live outside the indexes' slot: no script may read them
    /// together with the indexes.
    var isSpread: Bool { self.spreadPrefix != nil }

    func record(hash: String) -> String {
        guard let spread = self.spreadPrefix else { return "\(self.indexPrefix)apikey:\(hash)" }
        return "\(spread)apikey:{\(hash)}"
    }

    func lastUsed(id: String) -> String {
        guard let spread = self.spreadPrefix else { return "\(self.indexPrefix)apikey-used:\(id)" }
        return "\(spread)apikey-used:{\(id)}"
    }

    func hashOf(id: String) -> String { "\(self.indexPrefix)apikey-id:\(id)" }
    var ids: String { "\(self.indexPrefix)apikeys" }
    var byCreated: String { "\(self.indexPrefix)apikeys-by-created" }
    func owned(by owner: String) -> String { "\(self.indexPrefix)apikeys-owner:\(owner)" }
    var indexedMarker: String { "\(self.indexPrefix)apikeys-indexed" }
}
