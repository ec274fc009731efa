import GatewayAuth

/// The strict JSON reader alone: whatever it accepts, written back as compact JSON, must
/// read back to the same value (the gateway signs and publishes documents it writes this
/// way), and the writer's text must be accepted. Stateless; the fuzzer's thread.
enum JSONTarget {
    static func run(_ input: UnsafeBufferPointer<UInt8>) {
        guard let value = try? StrictJSON.parse(input) else { return }
        roundTrip(value)
    }

    static func roundTrip(_ value: JSONValue) {
        let text = value.jsonText
        do {
            let again = try StrictJSON.parse(Array(text.utf8))
            invariant(again == value, "JSON changed on a round trip: \(text)")
        } catch {
            invariant(false, "the JSON writer's text is refused by the reader: \(error) in \(text)")
        }
    }
}
