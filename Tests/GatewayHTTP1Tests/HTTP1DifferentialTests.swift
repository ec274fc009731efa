import GatewayHTTP1
import GatewayHTTP1Oracle
import NIOCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Our parser against llhttp (NIOHTTP1's decoder) on the checked-in seed corpus and on
/// generated inputs: every input is either refused by ours or framed identically.
@Suite struct HTTP1DifferentialTests {
    static let maxHeaderBytes = 32 * 1024

    /// The rules where ours refuses what llhttp frames: each one a policy of the gateway
    /// (`RequestValidation` refused these after llhttp before) or a stricter reading of RFC 9112.
    /// A refusal outside this list where llhttp accepts fails the tests.
    static let deliberatelyStricter: Set<HTTP1ParseError> = [
        .missingHost, .duplicateHost, .invalidHost, .invalidTarget, .connectNotSupported,
        .unsupportedTransferEncoding, .unsupportedVersion, .invalidConnection,
        // Several spaces in the request line; chunk sizes over 63 bits; `;name=` with no value;
        // Content-Length over 18 digits; a bare LF between requests.
        .invalidRequestLine, .invalidChunkSize, .invalidChunkExtension, .invalidContentLength, .bareLF,
        // Ours counts the whole head and chunk lines; NIO counts names, values and the target.
        .headTooLarge, .tooManyHeaderFields, .chunkLineTooLong, .trailersTooLarge,
        // llhttp refuses framing trailers but acts on Connection and Upgrade ones.
        .framingTrailerField,
    ]

    /// The seeds of the `http1` fuzz target (Fuzz/corpus/http1, written by Fuzz/make-seeds.py
    /// from the e2e smuggling and hardening tests).
    static func corpus() throws -> [[UInt8]] {
        let directory = URLPath.corpusDirectory
        var inputs: [[UInt8]] = []
        for name in try URLPath.list(directory).sorted() {
            inputs.append(try URLPath.read(directory + "/" + name))
        }
        return inputs
    }

    @Test func corpusIsFramedIdenticallyOrRefused() throws {
        let inputs = try Self.corpus()
        #expect(inputs.count >= 40)
        var refusals: [String: Int] = [:]
        for input in inputs {
            for pieces in Splits.some(of: input) {
                let verdict = HTTP1Differential.run(pieces, maxHeaderBytes: Self.maxHeaderBytes).verdict
                if case .diverged(let why) = verdict {
                    Issue.record("\(why)\ninput: \(String(decoding: input, as: UTF8.self).debugDescription)")
                }
                if case .oursRefused(let error, true) = verdict {
                    #expect(Self.deliberatelyStricter.contains(error), "\(error): \(input)")
                    if pieces.count == 1 { refusals["\(error)", default: 0] += 1 }
                }
            }
        }
        print("corpus: \(inputs.count) inputs; refused by ours, accepted by llhttp: \(refusals)")
    }

    /// Mutated requests from a fixed seed: none may diverge; the stricter refusals are
    /// counted by rule (every one of them must be a rule of ours, see the report below).
    @Test func generatedInputsAreFramedIdenticallyOrRefused() {
        var mutator = RequestMutator(seed: 0x6462_6777_6874_7031)
        var identical = 0
        var stricter: [String: Int] = [:]
        var bothRefused = 0
        let count = 20_000
        for _ in 0..<count {
            let input = mutator.stream()
            let pieces = mutator.pieces(input).map { ByteBuffer(bytes: $0) }
            let (verdict, _, _) = HTTP1Differential.run(pieces, maxHeaderBytes: 1024)
            switch verdict {
            case .identical: identical += 1
            case .oursRefused(let error, true):
                stricter["\(error)", default: 0] += 1
                #expect(Self.deliberatelyStricter.contains(error), "\(error): \(input)")
            case .oursRefused: bothRefused += 1
            case .oursStopped: stricter["stopped after close or upgrade", default: 0] += 1
            case .diverged(let why):
                Issue.record("\(why)\ninput: \(String(decoding: input, as: UTF8.self).debugDescription)")
            }
        }
        print("generated: \(count) inputs, \(identical) framed identically, \(bothRefused) refused by both,")
        print("refused by ours only: \(stricter.sorted { $0.key < $1.key })")
        // The generator must reach both sides: accepted inputs and refused ones.
        #expect(identical > count / 20)
        #expect(bothRefused > count / 20)
    }
}

/// Ways to cut an input into the pieces a connection might read.
enum Splits {
    static func some(of input: [UInt8]) -> [[ByteBuffer]] {
        var result = [[ByteBuffer(bytes: input)]]
        if input.count > 1 {
            result.append(input.map { ByteBuffer(bytes: [$0]) })
            let middle = input.count / 2
            result.append([ByteBuffer(bytes: input[..<middle]), ByteBuffer(bytes: input[middle...])])
        }
        return result
    }
}

/// Reads the checked-in corpus relative to this source file.
enum URLPath {
    static let corpusDirectory: String = {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/") + "/Fuzz/corpus/http1"
    }()

    static func list(_ directory: String) throws -> [String] {
        guard let handle = opendir(directory) else { throw CorpusError.unreadable(directory) }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if !name.hasPrefix(".") { names.append(name) }
        }
        return names
    }

    static func read(_ path: String) throws -> [UInt8] {
        guard let file = fopen(path, "rb") else { throw CorpusError.unreadable(path) }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count <= 0 { break }
            bytes += chunk[..<count]
        }
        return bytes
    }
}

enum CorpusError: Error {
    case unreadable(String)
}
