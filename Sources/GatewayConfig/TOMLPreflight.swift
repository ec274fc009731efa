/// A strict pass over a configuration's TOML text before TOMLKit reads it, refusing the
/// constructs on which toml++ (the C++ parser inside TOMLKit 0.6.0) trips one of its own
/// assertions instead of reporting a syntax error. SwiftPM compiles C++ without `NDEBUG` in
/// release builds too, so such an assertion aborts the process: `check-config`, `run`, and
/// a running gateway on SIGHUP. Found by the `config` fuzz target (docs/fuzzing.md).
///
/// What it refuses, outside strings and comments (valid TOML never has any of it):
/// - a table header (`[` or `[[` first on a line, outside any bracket) whose key does not
///   start with a bare-key character or a quote: toml++'s key reader assumes it does;
/// - brackets and braces that do not pair up (`[}`, `{]`, a closer with nothing open, an
///   opener never closed): where an array expects a value, toml++ hands a `}` to its value
///   reader, which assumes it never sees one;
/// - U+0085, U+2028 and U+2029, which toml++ counts as whitespace ending a value but does not
///   skip inside an array, reaching the same assumption.
///
/// The scanner knows TOML's four string forms (with escapes in basic strings) and comments,
/// so brackets, quotes and separators inside them are never misread. Stateless; any thread.
enum TOMLPreflight {
    /// The first problem found: its line (1-based) and the message, without the
    /// `TOML syntax error: ` prefix the loader adds.
    struct Problem: Equatable, Sendable {
        let line: Int
        let message: String
    }

    static func check(_ text: String) -> Problem? {
        var scanner = Scanner(bytes: Array(text.utf8))
        return scanner.run()
    }
}

extension TOMLPreflight {
    /// One pass over the bytes; a value type used by `check` only.
    private struct Scanner {
        let bytes: [UInt8]
        var index = 0
        var line = 1
        /// Only spaces and tabs since the last line break outside a string.
        var atLineStart = true
        /// The unclosed `[` and `{`, innermost last, with their lines.
        var open: [(byte: UInt8, line: Int)] = []

        init(bytes: [UInt8]) {
            self.bytes = bytes
        }

        mutating func run() -> Problem? {
            // toml++ skips a UTF-8 byte order mark at the very start, and only there.
            if self.bytes.starts(with: [0xEF, 0xBB, 0xBF]) {
                self.index = 3
            }
            while self.index < self.bytes.count {
                let byte = self.bytes[self.index]
                switch byte {
                case UInt8(ascii: "\n"):
                    self.line += 1
                    self.atLineStart = true
                    self.index += 1
                case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"):
                    self.index += 1
                case UInt8(ascii: "#"):
                    self.skipComment()
                case UInt8(ascii: "\""), UInt8(ascii: "'"):
                    self.atLineStart = false
                    self.skipString()
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    if byte == UInt8(ascii: "["), self.open.isEmpty, self.atLineStart, !self.headerStartsWithKey() {
                        return Problem(line: self.line, message: "a table header must start with a key")
                    }
                    self.atLineStart = false
                    self.open.append((byte, self.line))
                    self.index += 1
                case UInt8(ascii: "]"), UInt8(ascii: "}"):
                    self.atLineStart = false
                    let opener = byte == UInt8(ascii: "]") ? UInt8(ascii: "[") : UInt8(ascii: "{")
                    guard let innermost = self.open.popLast() else {
                        return Problem(line: self.line, message: "`\(Self.text(byte))` closes nothing")
                    }
                    guard innermost.byte == opener else {
                        return Problem(
                            line: self.line,
                            message: "`\(Self.text(byte))` cannot close the `\(Self.text(innermost.byte))` "
                                + "opened on line \(innermost.line)"
                        )
                    }
                    self.index += 1
                default:
                    if let separator = self.lineSeparator() {
                        return Problem(line: self.line, message: "\(separator) outside a string or comment")
                    }
                    self.atLineStart = false
                    self.index += 1
                }
            }
            if let unclosed = self.open.last {
                return Problem(line: unclosed.line, message: "`\(Self.text(unclosed.byte))` is never closed")
            }
            return nil
        }

        /// At a header's `[`: whether what follows `[` or `[[` (and spaces or tabs) can start
        /// a key, or is the `]` toml++ refuses by itself, or the end of the text.
        private func headerStartsWithKey() -> Bool {
            var next = self.skippingBlanks(from: self.index + 1)
            if next < self.bytes.count, self.bytes[next] == UInt8(ascii: "[") {
                next = self.skippingBlanks(from: next + 1)
            }
            guard next < self.bytes.count else { return true }
            switch self.bytes[next] {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "\""),
                UInt8(ascii: "'"), UInt8(ascii: "]"):
                return true
            default:
                return false
            }
        }

        private func skippingBlanks(from start: Int) -> Int {
            var position = start
            while position < self.bytes.count,
                self.bytes[position] == UInt8(ascii: " ") || self.bytes[position] == UInt8(ascii: "\t")
            {
                position += 1
            }
            return position
        }

        /// The name of the line separator starting at `index` (UTF-8 C2 85, E2 80 A8, E2 80 A9).
        private func lineSeparator() -> String? {
            let rest = self.bytes[self.index...]
            if rest.starts(with: [0xC2, 0x85]) { return "U+0085" }
            if rest.starts(with: [0xE2, 0x80, 0xA8]) { return "U+2028" }
            if rest.starts(with: [0xE2, 0x80, 0xA9]) { return "U+2029" }
            return nil
        }

        /// Up to, not including, the line break.
        private mutating func skipComment() {
            while self.index < self.bytes.count, self.bytes[self.index] != UInt8(ascii: "\n") {
                self.index += 1
            }
        }

        /// From an opening quote to just past the closing one. A single-line string also ends
        /// at a line break (toml++ refuses that text itself; stopping there keeps the lines
        /// after it read as TOML rather than as string).
        private mutating func skipString() {
            let quote = self.bytes[self.index]
            let escapes = quote == UInt8(ascii: "\"")
            if self.quotes(at: self.index) >= 3 {
                self.index += 3
                while self.index < self.bytes.count {
                    let byte = self.bytes[self.index]
                    if escapes, byte == UInt8(ascii: "\\") {
                        if self.index + 1 < self.bytes.count, self.bytes[self.index + 1] == UInt8(ascii: "\n") {
                            self.line += 1
                        }
                        self.index += 2
                    } else if byte == quote, self.quotes(at: self.index) >= 3 {
                        // Up to two quotes before the closing three belong to the string.
                        self.index += min(self.quotes(at: self.index), 5)
                        return
                    } else {
                        if byte == UInt8(ascii: "\n") { self.line += 1 }
                        self.index += 1
                    }
                }
                return
            }
            self.index += 1
            while self.index < self.bytes.count {
                let byte = self.bytes[self.index]
                if byte == UInt8(ascii: "\n") { return }
                self.index += 1
                if byte == quote { return }
                if escapes, byte == UInt8(ascii: "\\"), self.index < self.bytes.count,
                    self.bytes[self.index] != UInt8(ascii: "\n")
                {
                    self.index += 1
                }
            }
        }

        /// How many copies of the quote at `position` follow one another from there.
        private func quotes(at position: Int) -> Int {
            var end = position
            while end < self.bytes.count, self.bytes[end] == self.bytes[position] { end += 1 }
            return end - position
        }

        private static func text(_ byte: UInt8) -> String {
            String(decoding: [byte], as: UTF8.self)
        }
    }
}
