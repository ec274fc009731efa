package import NIOCore

/// A parsed request head: its bytes exactly as the client sent them (request line to the
/// empty line), the offsets of every part, and the fields the gateway's policy needs read
/// once (framing, Host, credentials, forwarding, `Expect`, `Connection`, `Upgrade`). Nothing
/// is copied into Strings until a caller asks for one. A value; any thread.
package struct HTTP1RequestHead: Sendable {
    /// The head's bytes; every range below is an offset from its reader index.
    package let bytes: ByteBuffer
    package let method: HTTP1Method
    package let methodRange: Range<Int>
    package let target: Range<Int>
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    package let minorVersion: Int
    /// Every field line in order.
    package let fields: [HTTP1Field]
    package let framing: HTTP1BodyFraming
    package let connection: HTTP1ConnectionOptions
    package let host: HTTP1FieldOccurrences
    package let authorization: HTTP1FieldOccurrences
    package let forwardedFor: HTTP1FieldOccurrences
    package let requestID: HTTP1FieldOccurrences
    package let expect: HTTP1FieldOccurrences
    /// Whether an `Upgrade` field is present (with or without `Connection: upgrade`).
    package let hasUpgrade: Bool

    /// Whether the client may send another request on this connection after this one.
    package var keepAlive: Bool {
        if self.connection.close { return false }
        return self.minorVersion >= 1 || self.connection.keepAlive
    }

    /// Whether the client asks to switch protocols (`Upgrade` and `Connection: upgrade`):
    /// nothing after this message is HTTP/1 any more.
    package var isUpgrade: Bool {
        self.hasUpgrade && self.connection.upgrade
    }

    /// The bytes of `range` as text (lossy UTF-8), for the few values policy reads as text.
    package func string(_ range: Range<Int>) -> String {
        self.bytes.getString(at: self.bytes.readerIndex + range.lowerBound, length: range.count) ?? ""
    }

    /// The value of the first field named by `occurrences`, as text.
    package func value(_ occurrences: HTTP1FieldOccurrences) -> String? {
        occurrences.first.map { self.string(self.fields[$0].value) }
    }

    /// Every value of the field named `lowercase` whose lines `occurrences` counts, as text,
    /// in order (only a repeated field is searched for).
    package func values(_ occurrences: HTTP1FieldOccurrences, named lowercase: StaticString) -> [String] {
        guard let first = occurrences.first else { return [] }
        guard occurrences.count > 1 else { return [self.string(self.fields[first].value)] }
        var values: [String] = []
        values.reserveCapacity(occurrences.count)
        for index in first..<self.fields.count where self.fieldName(index, equals: lowercase) {
            values.append(self.string(self.fields[index].value))
        }
        return values
    }

    /// The name of field `index` equals `lowercase` ignoring ASCII case.
    package func fieldName(_ index: Int, equals lowercase: StaticString) -> Bool {
        self.bytes.withUnsafeReadableBytes { HTTP1Syntax.equalsIgnoringCase($0, self.fields[index].name, lowercase) }
    }
}
