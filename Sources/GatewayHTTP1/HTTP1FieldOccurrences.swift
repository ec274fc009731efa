/// Where a field the gateway's policy reads appears in a head: the index of its first line in
/// `fields`, and how many lines carry it (a policy that wants exactly one can tell). A value;
/// any thread.
package struct HTTP1FieldOccurrences: Sendable, Hashable {
    package private(set) var first: Int?
    package private(set) var count = 0

    package init() {}

    mutating func add(_ index: Int) {
        if self.first == nil { self.first = index }
        self.count += 1
    }
}
