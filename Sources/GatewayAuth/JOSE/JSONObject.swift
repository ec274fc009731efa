/// A JSON object whose member names are unique (duplicates are a parse error), in
/// document order. Immutable value; any thread.
package struct JSONObject: Sendable, Equatable {
    package private(set) var members: [(name: String, value: JSONValue)]

    package init(members: [(name: String, value: JSONValue)]) { self.members = members }

    package subscript(name: String) -> JSONValue? {
        members.first { $0.name == name }?.value
    }

    package var names: [String] { members.map(\.name) }

    package static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.members.count == rhs.members.count
            && zip(lhs.members, rhs.members).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}
