import GatewayAuth

/// JWK-set parsing, as a provider's document and as the operator's own file: every key kept
/// has a distinct `kid`, every key left out is explained, and the key count is bounded.
/// Stateless; the fuzzer's thread.
enum JWKSTarget {
    static func run(_ input: UnsafeBufferPointer<UInt8>) {
        for allowSymmetric in [false, true] {
            guard let set = try? JSONWebKeySet.parse(input, allowSymmetric: allowSymmetric) else { continue }
            invariant(set.keys.count <= JSONWebKeySet.maxKeys, "kept \(set.keys.count) keys")
            let kids = set.keys.compactMap(\.keyID)
            invariant(Set(kids).count == kids.count, "kept two keys with one kid")
            guard let root = try? StrictJSON.parseObject(input), let listed = root["keys"]?.array else {
                invariant(false, "a set was parsed from a document without a keys array")
                return
            }
            invariant(set.keys.count + set.problems.count == listed.count, "a key neither kept nor explained")
            if !allowSymmetric {
                for key in set.keys {
                    if case .symmetric = key.material { invariant(false, "kept a symmetric key from a provider's set") }
                }
            }
        }
    }
}
