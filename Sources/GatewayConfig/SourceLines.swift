/// Finds the line on which a table or key is written in a TOML text, for error messages.
///
/// The TOML library reports lines for syntax errors only; for semantic errors (a bad
/// value, an unknown key) this index recovers the line by scanning table headers and
/// `key =` lines. It is a best-effort aid: a key it cannot place is reported without a
/// line. Immutable after construction.
struct SourceLines: Sendable {
    private var lines: [String: Int] = [:]

    init(text: String) {
        var table = ""
        var arrayCounts: [String: Int] = [:]
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = rawLine.drop(while: { $0 == " " || $0 == "\t" })
            if line.hasPrefix("[[") {
                let name = Self.headerName(line.dropFirst(2), closing: "]]")
                let index = arrayCounts[name, default: 0]
                arrayCounts[name] = index + 1
                table = "\(name)[\(index)]"
                self.record(table, lineNumber)
            } else if line.hasPrefix("[") {
                table = Self.headerName(line.dropFirst(), closing: "]")
                self.record(table, lineNumber)
            } else if let equals = line.firstIndex(of: "="), !line.hasPrefix("#") {
                let key = line[..<equals].trimmingCharacters(in: " \t\"'")
                guard !key.isEmpty else { continue }
                self.record(table.isEmpty ? key : "\(table).\(key)", lineNumber)
            }
        }
    }

    private mutating func record(_ path: String, _ line: Int) {
        if self.lines[path] == nil {
            self.lines[path] = line
        }
    }

    private static func headerName(_ rest: Substring, closing: String) -> String {
        let name = rest.range(of: closing).map { rest[..<$0.lowerBound] } ?? rest
        return name.split(separator: ".").map { $0.trimmingCharacters(in: " \t\"'") }.joined(separator: ".")
    }

    /// The line of `path` (e.g. `server.listen`), or of its nearest enclosing table.
    func line(of path: String) -> Int? {
        var candidate = Substring(path)
        while true {
            if let line = self.lines[String(candidate)] {
                return line
            }
            guard let dot = candidate.lastIndex(of: ".") else { return nil }
            candidate = candidate[..<dot]
        }
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var slice = self[...]
        while let first = slice.first, set.contains(first) { slice = slice.dropFirst() }
        while let last = slice.last, set.contains(last) { slice = slice.dropLast() }
        return String(slice)
    }
}
