/// What the `Connection` fields of a message say: the `close`, `keep-alive` and `upgrade`
/// options, and the other field names they list (hop-by-hop for this connection only), as
/// offsets into the head's bytes. A value; any thread.
package struct HTTP1ConnectionOptions: Sendable, Hashable {
    package var close = false
    package var keepAlive = false
    package var upgrade = false
    /// Names listed besides `close`, `keep-alive` and `upgrade`.
    package var nominated: [Range<Int>] = []

    package init() {}

    /// Adds the options of one `Connection` value (`1#token`, empty list elements allowed).
    mutating func add(_ bytes: UnsafeRawBufferPointer, _ value: Range<Int>) throws(HTTP1ParseError) {
        var start = value.lowerBound
        while start <= value.upperBound {
            var end = start
            while end < value.upperBound, bytes[end] != UInt8(ascii: ",") { end += 1 }
            let element = HTTP1Syntax.trimmed(bytes, start..<end)
            if !element.isEmpty {
                for index in element where !HTTP1Syntax.isToken(bytes[index]) {
                    throw .invalidConnection
                }
                if HTTP1Syntax.equalsIgnoringCase(bytes, element, "close") {
                    self.close = true
                } else if HTTP1Syntax.equalsIgnoringCase(bytes, element, "keep-alive") {
                    self.keepAlive = true
                } else if HTTP1Syntax.equalsIgnoringCase(bytes, element, "upgrade") {
                    self.upgrade = true
                } else {
                    self.nominated.append(element)
                }
            }
            start = end + 1
        }
    }
}
