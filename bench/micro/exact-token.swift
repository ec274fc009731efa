// One lookup of an 807-byte JWT in a dictionary of 201 verified tokens keyed by
// `ExactToken` (the JWT cache and the valid-API-key map on a cache hit): the hash and the
// byte compare. bench/micro/run.sh exact-token.
// sources: Sources/GatewayAuth/ExactToken.swift

let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

func randomPart(_ count: Int, _ generator: inout SystemRandomNumberGenerator) -> String {
    String(decoding: (0..<count).map { _ in alphabet[Int(generator.next() & 63)] }, as: UTF8.self)
}

@main
enum ExactTokenBench {
    static func main() {
        var generator = SystemRandomNumberGenerator()
        var cache: [ExactToken: Int] = [:]
        for index in 0..<200 { cache[ExactToken(randomPart(807, &generator))] = index }
        let token = randomPart(36, &generator) + "." + randomPart(427, &generator) + "." + randomPart(342, &generator)
        cache[ExactToken(token)] = 200
        // Copies with storage of their own, as each request's header brings.
        let probes = (0..<2).map { _ in String(decoding: Array(token.utf8), as: UTF8.self) }
        let iterations = Int(CommandLine.arguments.dropFirst().first ?? "1000") ?? 1000
        print(lookUp(cache, probes, iterations))
    }
}

@inline(never)
func lookUp(_ cache: [ExactToken: Int], _ probes: [String], _ count: Int) -> Int {
    var total = 0
    for index in 0..<count {
        total &+= cache[ExactToken(probes[index & 1])] ?? 0
    }
    return total
}
