/// The request methods the parser accepts: the HTTP methods llhttp knows (RFC 9110's, WebDAV's,
/// PATCH, PURGE, QUERY...), so no method the gateway served before is refused now. CONNECT
/// is parsed only to be refused. A value; any thread.
package enum HTTP1Method: String, Sendable, Hashable, CaseIterable {
    case DELETE, GET, HEAD, POST, PUT, CONNECT, OPTIONS, TRACE, COPY, LOCK, MKCOL, MOVE, PROPFIND, PROPPATCH, SEARCH
    case UNLOCK, BIND, REBIND, UNBIND, ACL, REPORT, MKACTIVITY, CHECKOUT, MERGE, NOTIFY, SUBSCRIBE, UNSUBSCRIBE
    case PATCH, PURGE, MKCALENDAR, LINK, UNLINK, SOURCE, QUERY
    case MSEARCH = "M-SEARCH"

    private static let byLength: [[(bytes: [UInt8], method: HTTP1Method)]] = {
        var table = [[(bytes: [UInt8], method: HTTP1Method)]](repeating: [], count: 16)
        for method in HTTP1Method.allCases {
            table[method.rawValue.utf8.count].append((Array(method.rawValue.utf8), method))
        }
        return table
    }()

    /// The method spelled by `bytes[range]` (case-sensitive, as RFC 9110 says), or nil.
    static func parse(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> HTTP1Method? {
        guard range.count < Self.byLength.count else { return nil }
        candidates: for candidate in Self.byLength[range.count] {
            var index = range.lowerBound
            for byte in candidate.bytes {
                if bytes[index] != byte { continue candidates }
                index += 1
            }
            return candidate.method
        }
        return nil
    }
}
