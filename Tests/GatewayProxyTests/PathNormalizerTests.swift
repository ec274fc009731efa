import GatewayTestSupport
import Testing

@testable import GatewayProxy

private func normalized(_ path: String) -> String? {
    if case .success(let value) = PathNormalizer.normalize(path) { return value }
    return nil
}

@Suite struct PathNormalizerTests {
    @Test(arguments: [
        ("/", "/"),
        ("/v1/databases", "/v1/databases"),
        ("/v1//databases", "/v1/databases"),
        ("//v1///databases", "/v1/databases"),
        ("/v1/./databases", "/v1/databases"),
        ("/v1/x/../databases", "/v1/databases"),
        ("/v1/x/y/../../databases", "/v1/databases"),
        ("/v1/%64atabases", "/v1/databases"),
        ("/v1/%44atabases", "/v1/Databases"),
        ("/%7E", "/~"),
        ("/%7e", "/~"),
        ("/%2d", "/-"),
        ("/%2D", "/-"),
        ("/%5F%2E%41%7a%30", "/_.Az0"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/%c3%a9", "/%C3%A9"),
        ("/a%20b", "/a%20b"),
        ("/a%3fb", "/a%3Fb"),
        ("/%25", "/%25"),
        ("/%2541", "/%2541"),
        ("/v1/databases/", "/v1/databases/"),
        ("/v1/databases//", "/v1/databases/"),
        ("/v1/databases/.", "/v1/databases"),
        ("/v1/databases/./", "/v1/databases/"),
        ("/a/..", "/"),
        ("/a/../", "/"),
        ("/.", "/"),
        ("//", "/"),
        ("/%2e", "/"),
        ("/a/%2e%2e/b", "/b"),
        ("/a/%2E%2E/b", "/b"),
        ("/a/.%2e/b", "/b"),
        ("/...", "/..."),
        ("/a/.../b", "/a/.../b"),
        ("/.a/..b", "/.a/..b"),
        ("/b~c", "/b~c"),
        ("/é", "/é"),
    ])
    func normalizes(input: String, expected: String) {
        #expect(PathNormalizer.normalize(input) == .success(expected), "\(input)")
    }

    @Test(arguments: [
        "",
        "v1/databases",
        "*",
        "/..",
        "/../v1",
        "/a/../..",
        "/a/../../b",
        "/%2e%2e",
        "/a/%2e%2e/%2E%2E",
        "/v1/a%2fb",
        "/v1/a%2Fb",
        "/v1/a%5cb",
        "/v1/a%5Cb",
        "/v1/a%00b",
        "/v1/a\\b",
        "\\v1",
        "/v1/a;b",
        "/v1/databases;jsessionid=1",
        "/v1/a%3Bb",
        "/v1/admin%3bx/users",
        "/v1/a%4",
        "/v1/a%4g",
        "/v1/a%zz",
        "/v1/a%",
        "/%",
        "/v1/%%41",
        "/v1/%2",
        "/%%2f",
    ])
    func refuses(input: String) {
        let result = PathNormalizer.normalize(input)
        #expect(normalized(input) == nil, "\(input) -> \(result)")
        if case .failure(.ambiguous(let message)) = result {
            #expect(!message.isEmpty)
        }
    }

    @Test func failureNamesTheReason() {
        #expect(PathNormalizer.normalize("/a%2Fb") == .failure(.ambiguous("the path contains an encoded /, \\ or NUL")))
        #expect(PathNormalizer.normalize("/..") == .failure(.ambiguous("the path climbs above the root")))
        #expect(PathNormalizer.normalize("/a%zz") == .failure(.ambiguous("the path has a malformed percent-escape")))
    }

    /// normalize(normalize(x)) == normalize(x) for every path that normalizes, and the
    /// result is in canonical form: one leading slash, no empty or dot segments, no
    /// escape of an unreserved character, upper-case hex in kept escapes.
    @Test func normalizationIsIdempotent() throws {
        let pieces = ["a", ".", "..", "", "%2e", "%2E", "%41", "b~c", "%2e%2e", "%c3%a9", "%7e", "%25", "x%2D", "é"]
        var generator = SplitMix64(seed: 0x5EED)
        var successes = 0
        var failures = 0
        for _ in 0..<600 {
            let count = Int.random(in: 0...6, using: &generator)
            var path = "/" + (0..<count).map { _ in pieces.randomElement(using: &generator)! }.joined(separator: "/")
            if Bool.random(using: &generator) { path += "/" }
            guard let once = normalized(path) else {
                failures += 1
                continue
            }
            successes += 1
            #expect(PathNormalizer.normalize(once) == .success(once), "\(path) -> \(once)")
            #expect(once.hasPrefix("/"))
            #expect(!once.contains("//"), "\(path) -> \(once)")
            let segments = once.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            for segment in segments.dropLast() {
                #expect(segment != "" && segment != "." && segment != "..", "\(path) -> \(once)")
            }
            if let last = segments.last {
                #expect(last != "." && last != "..", "\(path) -> \(once)")
            }
            for escape in ["%2e", "%2E", "%41", "%7e", "%7E", "%2D", "%c3", "%a9"] {
                #expect(!once.contains(escape), "\(path) -> \(once)")
            }
        }
        // The generator must exercise both outcomes, mostly successes.
        #expect(successes > 300)
        #expect(failures > 10)
    }
}
