import GatewayPages

/// The browser cookie reader. The input is one or more `Cookie` header values, one a line.
/// A value it returns must be one we could have written (43 base64url characters), appear
/// exactly once under that name, and read back from a header of its own. Stateless; the
/// fuzzer's thread.
enum CookieTarget {
    static func run(_ input: UnsafeBufferPointer<UInt8>) {
        let headers = input.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        for isTLS in [false, true] {
            for name in [BrowserCookies.sessionName(isTLS: isTLS), BrowserCookies.browserName(isTLS: isTLS)] {
                guard let value = BrowserCookies.value(named: name, in: headers) else { continue }
                invariant(BrowserCookies.isTokenValue(value), "returned a value we never write: \(value)")
                let mentions = headers.joined(separator: ";").split(separator: ";").filter { item in
                    let pair = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    return pair.count == 2 && trimmed(pair[0]) == name
                }
                invariant(mentions.count == 1, "returned \(name) although it is given \(mentions.count) times")
                invariant(
                    BrowserCookies.value(named: name, in: ["a=b; \(name)=\(value)"]) == value,
                    "the value does not read back"
                )
            }
        }
    }
}

private func trimmed(_ text: Substring) -> String {
    let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
    return String(String(text.drop(while: isBlank).reversed()).drop(while: isBlank).reversed())
}
