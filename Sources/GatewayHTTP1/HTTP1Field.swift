/// One header or trailer field as offsets into its section's bytes: the name, the value
/// without surrounding whitespace, and the whole line with its CRLF (what a writer copies
/// when it forwards the field unchanged). A value; any thread.
package struct HTTP1Field: Sendable, Hashable {
    package var name: Range<Int>
    package var value: Range<Int>
    package var line: Range<Int>

    package init(name: Range<Int>, value: Range<Int>, line: Range<Int>) {
        self.name = name
        self.value = value
        self.line = line
    }
}

extension HTTP1Field {
    /// Whether `name` is a field name the parser accepts (a non-empty token).
    package static func isValidName(_ name: String) -> Bool {
        !name.utf8.isEmpty && name.utf8.allSatisfy(HTTP1Syntax.isToken)
    }
}
