// One `BearerCredential.parse` of an ~800-byte JWT Authorization value (token String
// included): bench/micro/run.sh bearer-parse.
// sources: Sources/GatewayAuth/BearerCredential.swift

/// A base64url part of `count` characters, the same on every run.
func part(_ count: Int, seed: UInt8) -> String {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    var bytes: [UInt8] = []
    var state = seed
    for _ in 0..<count {
        state = state &* 31 &+ 7
        bytes.append(alphabet[Int(state) & 63])
    }
    return String(decoding: bytes, as: UTF8.self)
}

@main
enum BearerParseBench {
    static func main() {
        let header = "Bearer " + part(36, seed: 1) + "." + part(420, seed: 2) + "." + part(342, seed: 3)
        let iterations = Int(CommandLine.arguments.dropFirst().first ?? "1000") ?? 1000
        print(header.utf8.count, parseAll(header, iterations))
    }
}

@inline(never)
func parseAll(_ header: String, _ count: Int) -> Int {
    var total = 0
    for _ in 0..<count {
        if let credential = BearerCredential.parse(header), credential.shape == .threeParts {
            total &+= credential.token.utf8.count
        }
    }
    return total
}
