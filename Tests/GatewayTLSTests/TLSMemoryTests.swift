import Foundation
import NIOCore
import Testing

@testable import GatewayTLS

/// Resident set size of this process in KiB (`/proc/self/status`).
func residentKiB() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return -1 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? -1
    }
    return -1
}

/// Whether this process runs under AddressSanitizer (`make sanitize`): its runtime defines
/// `__asan_init`, which no other build links.
let underAddressSanitizer = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__asan_init") != nil

@Suite struct TLSMemoryTests {
    /// 20,000 full handshakes (client and server, data both ways, close_notify) on shared
    /// contexts leave the resident set flat: every SSL* and its BIOs are freed. The
    /// baseline is taken after 2,000 handshakes, once allocator pools and OpenSSL's
    /// lazily built tables exist. Runs in a child process of its own: the RSS of the test
    /// process moves with whatever the suites running in parallel allocate (a clean-clone
    /// run saw +50 MiB that were not ours).
    ///
    /// Under AddressSanitizer the RSS bound cannot hold (its allocator keeps freed memory in
    /// quarantine and its shadow memory grows with every allocation), so the test is skipped
    /// there; the normal `swift test` runs it, and LeakSanitizer reports an unfreed SSL*
    /// wherever the other TLS tests make one.
    @Test(.disabled(if: underAddressSanitizer, "RSS is not flat under AddressSanitizer's allocator"))
    func twentyThousandHandshakesLeaveRSSFlat() async throws {
        let result = try await #require(processExitsWith: .success, observing: [\.standardOutputContent]) {
            do {
                let server = try Contexts.server()
                let client = try Contexts.client()
                let total = Int(ProcessInfo.processInfo.environment["TLS_HANDSHAKES"] ?? "") ?? 20_000
                let warmUp = total / 10
                var baseline = 0
                let started = Date()
                for index in 1...total {
                    let pair = try BackToBack(server: server, client: client)
                    try pair.handshake()
                    pair.write(pair.client, Array("ping".utf8))
                    pair.write(pair.server, Array("pong".utf8))
                    try pair.pump()
                    pair.client.close(promise: nil)
                    try pair.pump()
                    guard pair.serverRecorder.received.readableBytes == 4,
                        pair.clientRecorder.received.readableBytes == 4
                    else {
                        print("handshake \(index): data lost")
                        exit(3)
                    }
                    if index == warmUp { baseline = residentKiB() }
                }
                let final = residentKiB()
                let live = SSLObject.live.load(ordering: .relaxed)
                let seconds = Date().timeIntervalSince(started)
                print(
                    "TLS memory: \(total) handshakes in \(String(format: "%.1f", seconds)) s; RSS after \(warmUp): \(baseline) KiB, after \(total): \(final) KiB, growth \(final - baseline) KiB; live SSL objects \(live)"
                )
                // Every SSL* freed; a leaked one costs several KiB, 18,000 would be tens of MiB.
                // The README's bound: under 256 KiB (+12 to +84 KiB measured).
                guard live == 0, baseline > 0, final > 0, final - baseline < 256 else { exit(1) }
                exit(0)
            } catch {
                print("error: \(error)")
                exit(2)
            }
        }
        print(String(decoding: result.standardOutputContent, as: UTF8.self))
    }
}
