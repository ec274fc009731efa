import GatewayHTTP1

/// The request an operator asks `explain` about: what the client would send, never sent.
/// A value; any thread.
package struct ExplainRequest: Sendable {
    package var method: String
    /// The request target as the client sends it (path and optional query).
    package var target: String
    /// Extra request headers, in order (an `Authorization` among them is checked as sent).
    package var headers: [(name: String, value: String)]
    /// The TCP peer address the gateway would see (default 127.0.0.1).
    package var clientAddress: String

    package init(method: String, target: String, headers: [(name: String, value: String)], clientAddress: String) {
        self.method = method
        self.target = target
        self.headers = headers
        self.clientAddress = clientAddress
    }

    /// Parses one `--header 'Name: value'` argument.
    package static func parseHeader(_ text: String) -> (name: String, value: String)? {
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let name = String(text[..<colon])
        let value = String(text[text.index(after: colon)...]).trimmingCharacters(in: " \t")
        guard !name.isEmpty, HTTP1Field.isValidName(name) else { return nil }
        return (name, value)
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) { slice.removeFirst() }
        while let last = slice.last, set.contains(last) { slice.removeLast() }
        return String(slice)
    }
}
