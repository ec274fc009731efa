/// A set of field names and name prefixes as lowercase bytes, compared with a field's name in
/// a head without making a String: built once (e.g. a static per rule set) and reused for
/// every head. A value; any thread.
package struct HTTP1FieldNames: Sendable {
    let names: [[UInt8]]
    let prefixes: [[UInt8]]

    /// `names` and `prefixes` are compared ignoring ASCII case.
    package init(names: [String] = [], prefixes: [String] = []) {
        self.names = names.map { Array($0.lowercased().utf8) }
        self.prefixes = prefixes.map { Array($0.lowercased().utf8) }
    }

    /// Whether `bytes[name]` is one of the names or starts with one of the prefixes, an `_`
    /// in it read as `-`: CGI-style servers (WSGI, Rack, PHP) turn both into `_`, so
    /// `X_DBAudit_Subject` reaches them as `X-DBAudit-Subject` would.
    func contains(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>) -> Bool {
        for candidate in self.names where candidate.count == name.count {
            if Self.hasPrefix(bytes, name, candidate) { return true }
        }
        for prefix in self.prefixes where Self.hasPrefix(bytes, name, prefix) {
            return true
        }
        return false
    }

    private static func hasPrefix(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>, _ prefix: [UInt8]) -> Bool {
        guard name.count >= prefix.count else { return false }
        var index = name.lowerBound
        for expected in prefix {
            let byte = bytes[index]
            guard
                HTTP1Syntax.lowercased(byte) == expected || (byte == UInt8(ascii: "_") && expected == UInt8(ascii: "-"))
            else { return false }
            index += 1
        }
        return true
    }
}
