/// Everything wrong with one configuration file, each problem naming the file, the line
/// where it is known, and the key. Collected in full so an operator fixes a file in one go.
package struct ConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// One problem in one place.
    package struct Problem: Sendable, Hashable, CustomStringConvertible {
        package var file: String
        package var line: Int?
        /// Dotted key path, e.g. `server.max_body_bytes`; empty for file-level problems.
        package var key: String
        package var message: String

        package var description: String {
            let location = self.line.map { "\(self.file):\($0)" } ?? self.file
            return self.key.isEmpty ? "\(location): \(self.message)" : "\(location): \(self.key): \(self.message)"
        }
    }

    package var problems: [Problem]

    package init(problems: [Problem]) {
        self.problems = problems
    }

    package var description: String {
        self.problems.map(\.description).joined(separator: "\n")
    }
}
