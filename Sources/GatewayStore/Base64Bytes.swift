import Foundation

/// Standard base64 of stored binary values (the sealed refresh answer). Any thread.
enum Base64Bytes {
    static func encode(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    static func decode(_ text: [UInt8]) -> [UInt8]? {
        guard text.count <= 64 * 1024 else { return nil }
        return Data(base64Encoded: Data(text)).map { Array($0) }
    }
}
