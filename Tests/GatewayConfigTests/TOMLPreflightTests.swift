import GatewayTestSupport
import Testing

@testable import GatewayConfig

/// The pass that refuses, before TOMLKit reads a configuration, what makes toml++ abort the
/// process (docs/fuzzing.md). Refused texts must come back as one syntax error on the right
/// line, through the loader too; valid TOML with brackets, quotes and separators inside
/// strings and comments must pass the pass and parse.
@Suite struct TOMLPreflightTests {
    struct Refused: Sendable, CustomTestStringConvertible {
        let text: String
        let line: Int
        let message: String
        var testDescription: String { self.text.debugDescription }
    }

    static let refused: [Refused] = [
        .init(text: "a = [}\n", line: 1, message: "`}` cannot close the `[` opened on line 1"),
        .init(text: "a = {]\n", line: 1, message: "`]` cannot close the `{` opened on line 1"),
        .init(text: "a = [1, }\n", line: 1, message: "`}` cannot close the `[` opened on line 1"),
        .init(text: "a = [[1], [2, }]]\n", line: 1, message: "`}` cannot close the `[` opened on line 1"),
        .init(text: "a = [\n  [1,\n   }\n]\n", line: 3, message: "`}` cannot close the `[` opened on line 2"),
        .init(text: "a = [ # a comment ]\n}\n", line: 2, message: "`}` cannot close the `[` opened on line 1"),
        .init(text: "a = { b = [ } }\n", line: 1, message: "`}` cannot close the `[` opened on line 1"),
        .init(text: "a = [\"x\", '}', }\n", line: 1, message: "`}` cannot close the `[` opened on line 1"),
        .init(text: "a = \"\"\"\n[}\n\"\"\"\nb = [}\n", line: 4, message: "`}` cannot close the `[` opened on line 4"),
        .init(text: "[t]\nx = { y = [\n}\n", line: 3, message: "`}` cannot close the `[` opened on line 2"),
        .init(text: "a = [1]]\n", line: 1, message: "`]` closes nothing"),
        .init(text: "a = 1 }\n", line: 1, message: "`}` closes nothing"),
        .init(text: "a = [1,\n2,\n", line: 1, message: "`[` is never closed"),
        .init(text: "a = [\u{2028}]\n", line: 1, message: "U+2028 outside a string or comment"),
        .init(text: "a = [\u{2029}1]\n", line: 1, message: "U+2029 outside a string or comment"),
        .init(text: "x = 1\na = [\u{85}]\n", line: 2, message: "U+0085 outside a string or comment"),
        .init(text: "\u{FEFF}[`x]\n", line: 1, message: "a table header must start with a key"),
    ]

    @Test(arguments: Self.refused)
    func refusedWithItsLine(_ case: Refused) {
        #expect(TOMLPreflight.check(`case`.text) == TOMLPreflight.Problem(line: `case`.line, message: `case`.message))
        // Through the loader: one problem, no abort (each of these aborted toml++ or is of a
        // class that did).
        #expect(
            configurationProblems(`case`.text, file: "f.conf") == [
                .init(file: "f.conf", line: `case`.line, key: "", message: "TOML syntax error: \(`case`.message)")
            ]
        )
    }

    @Test(arguments: [
        "a = \"[}\"\n",
        "a = '{]'\n",
        "a = \"\\\"[}\"\n",
        "a = \"\\\\\"\nb = [1]\n",
        "a = \"\"\"\n[}\n{]\n\"\"\"\n",
        "a = '''\n]{\\'''\n",
        "a = \"\"\"x\"\"\"\"\nb = [1]\n",
        "a = \"\"\"x\\\"\"\"[}\"\"\"\n",
        "a = \"\"\"\\\n  [}\"\"\"\n",
        "# [} {] \u{2028}\na = 1\n",
        "a = \"\u{2028}\u{85}\" # \u{2029}\n",
        "\"k[}\" = 1\n",
        "a = [\n  1, # ]\n  2,\n]\n",
        "a = [{ b = [1, 2] }, { c = { d = \"}\" } }]\n",
        "[t]\nx = [[1, 2], ['a']]\n",
        "[[t.u]]\n[ t . \"v]\" ]\n",
        "\u{FEFF}[t]\na = 1\n",
        "[t]\r\na = [\r\n 1\r\n]\r\n",
        "a = \"\"\n",
    ])
    func validTOMLPassesAndParses(text: String) {
        #expect(TOMLPreflight.check(text) == nil)
        // Valid TOML: whatever the loader says about the keys, TOMLKit read the text.
        #expect(!configurationProblems(text).contains { $0.message.hasPrefix("TOML syntax error") })
    }

    @Test func theFullConfigurationPasses() {
        #expect(TOMLPreflight.check(ConfigurationLoaderValidFileTests.fullFile) == nil)
    }

    @Test(arguments: ["[\n", "[[ `x]]\n", "  [ {a = 1}]\n", "[\u{00e9}]\n", "[\r\n"])
    func headersThatDoNotStartWithAKeyAreRefused(text: String) {
        #expect(
            TOMLPreflight.check("a = 1\n" + text)
                == TOMLPreflight.Problem(line: 2, message: "a table header must start with a key")
        )
    }

    @Test(arguments: [
        "[server]\n", "[[auth.jwt.issuers]]\n", "[ \"quoted\" ]\n", "['lit']\n", "x = [\n  1,\n]\n",
        // Header-like lines inside multi-line strings are string content, not headers.
        "x = \"\"\"\n[`x]\n\"\"\"\n", "x = '''\n[ {a = 1}]\n'''\n",
    ])
    func ordinaryHeadersPass(text: String) {
        #expect(TOMLPreflight.check(text) == nil)
    }
}
