import GatewayCore
import Testing

/// `ScopeToken`: RFC 6749 scope tokens without a comma, and space-delimited scope strings.
@Suite struct ScopeTokenTests {
    @Test(arguments: [
        "read:databases", "admin", "a", "!", "~", "https://api.example.com/read", "x#y", "[a]", "a{b}|c",
        "'quoted'", String(repeating: "s", count: 128),
    ])
    func scopeTokensAreValid(token: String) {
        #expect(ScopeToken.isValid(token))
    }

    @Test(arguments: [
        "", " ", "a b", "x\tadmin", "a\nb", "a\rb", "a\u{0}b", "a\u{7F}b", "read:databases,admin", ",", "a\"b", "a\\b",
        "caf\u{E9}", "\u{2028}", "\u{FF0C}", String(repeating: "s", count: 129),
    ])
    func otherValuesAreNot(token: String) {
        #expect(!ScopeToken.isValid(token))
    }

    @Test func listsSplitOnSpacesOnly() {
        #expect(ScopeToken.parseList("read:databases read:logs") == ["read:databases", "read:logs"])
        #expect(ScopeToken.parseList("  a  b ") == ["a", "b"])
        #expect(ScopeToken.parseList("") == [])
        // A tab or a newline is not a delimiter: it stays inside a token, which is refused.
        #expect(ScopeToken.parseList("read:databases x\tadmin") == nil)
        #expect(ScopeToken.parseList("read:databases\nadmin") == nil)
        #expect(ScopeToken.parseList("read:databases\u{A0}admin") == nil)
        #expect(ScopeToken.parseList("read:databases,admin") == nil)
    }

    @Test func areValidNeedsEveryElement() {
        #expect(ScopeToken.areValid(["read:databases", "admin"]))
        #expect(ScopeToken.areValid([]))
        #expect(!ScopeToken.areValid(["read:databases", "x admin"]))
    }
}
