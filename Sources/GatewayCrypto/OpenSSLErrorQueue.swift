import CGatewayOpenSSL

/// OpenSSL's thread-local error queue. It must be empty before each `SSL_*` call whose
/// failure is diagnosed with `SSL_get_error` (stale entries would be blamed on it), and
/// drained after a failure. Any thread; each thread has its own queue.
package enum OpenSSLErrorQueue {
    package static func clear() {
        ERR_clear_error()
    }

    /// Every queued error as OpenSSL's one-line text, oldest first; empties the queue.
    package static func drain() -> [String] {
        var reasons: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            let text = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            // "error:0A000086:SSL routines::certificate verify failed" -> the part after the 4th colon.
            let parts = text.split(separator: ":", maxSplits: 4, omittingEmptySubsequences: false)
            let reason = parts.count == 5 ? String(parts[4]) : text
            reasons.append(reason.isEmpty ? text : reason)
            if reasons.count >= 8 {
                ERR_clear_error()
                break
            }
        }
        return reasons
    }
}
