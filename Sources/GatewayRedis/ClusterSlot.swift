/// The hash slot of a key in Redis Cluster: CRC16 (the XMODEM variant the cluster
/// specification names) of the key, or of its hash tag, modulo 16384.
///
/// A hash tag is the part between the first `{` and the next `}`, when that part is not
/// empty: keys sharing a tag share a slot, which is how a command or script touching
/// several keys keeps them on one node. Pure functions; any thread.
package enum ClusterSlot {
    package static let count = 16384

    /// The slot `key` lives in.
    package static func of(_ key: some Collection<UInt8>) -> Int {
        Int(Self.crc16(Self.hashedPart(of: key)) & 0x3FFF)
    }

    package static func of(_ key: String) -> Int {
        Self.of(Array(key.utf8))
    }

    /// What the cluster hashes: the tag when there is a non-empty one, else the whole key.
    package static func hashedPart<Key: Collection<UInt8>>(of key: Key) -> Key.SubSequence {
        guard let open = key.firstIndex(of: UInt8(ascii: "{")) else { return key[...] }
        let afterOpen = key.index(after: open)
        guard let close = key[afterOpen...].firstIndex(of: UInt8(ascii: "}")), close != afterOpen else {
            return key[...]
        }
        return key[afterOpen..<close]
    }

    /// CRC16-CCITT, XMODEM flavour: polynomial 0x1021, initial value 0, no reflection.
    package static func crc16(_ bytes: some Sequence<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ Self.table[Int((crc >> 8) ^ UInt16(byte)) & 0xFF]
        }
        return crc
    }

    private static let table: [UInt16] = (0..<256).map { index -> UInt16 in
        var crc = UInt16(index) << 8
        for _ in 0..<8 {
            crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
        }
        return crc
    }
}
