/// ASCII case-insensitive header-name comparison without allocating lowercased copies.
/// Pure; any thread.
enum HeaderName {
    /// `name` equals `lowercase` (which must already be lowercase ASCII) ignoring ASCII case.
    @inline(__always)
    static func equals(_ name: String, _ lowercase: StaticString) -> Bool {
        var name = name
        return name.withUTF8 { nameBytes in
            lowercase.withUTF8Buffer { expected in
                guard nameBytes.count == expected.count else { return false }
                for i in 0..<nameBytes.count where nameBytes[i] != expected[i] {
                    let folded = nameBytes[i] >= 65 && nameBytes[i] <= 90 ? nameBytes[i] | 0x20 : nameBytes[i]
                    if folded != expected[i] { return false }
                }
                return true
            }
        }
    }

    /// `name` starts with `lowercasePrefix` ignoring ASCII case.
    @inline(__always)
    static func hasPrefix(_ name: String, _ lowercasePrefix: StaticString) -> Bool {
        var name = name
        return name.withUTF8 { nameBytes in
            lowercasePrefix.withUTF8Buffer { expected in
                guard nameBytes.count >= expected.count else { return false }
                for i in 0..<expected.count where nameBytes[i] != expected[i] {
                    let folded = nameBytes[i] >= 65 && nameBytes[i] <= 90 ? nameBytes[i] | 0x20 : nameBytes[i]
                    if folded != expected[i] { return false }
                }
                return true
            }
        }
    }
}
