/// One page of a key listing. Immutable value; any thread.
package struct APIKeyPage: Sendable, Hashable {
    /// The largest page a store serves.
    package static let maximumLimit = 1000

    package var records: [APIKeyRecord]
    /// Where the next page starts, or nil if this one is the last.
    package var nextOffset: Int?

    package init(records: [APIKeyRecord], nextOffset: Int?) {
        self.records = records
        self.nextOffset = nextOffset
    }
}
