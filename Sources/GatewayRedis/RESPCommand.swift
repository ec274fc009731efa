import CGatewayHiredis

#if canImport(Glibc)
import Glibc
#endif

/// Encodes Redis commands as RESP with hiredis's `redisFormatCommandArgv`, which handles
/// binary-safe arguments. Stateless; any thread.
package enum RESPCommand {
    /// The RESP bytes of one command, e.g. `["SET", "k", "v"]`.
    package static func encode(_ arguments: [[UInt8]]) -> [UInt8] {
        precondition(!arguments.isEmpty, "a Redis command needs at least its name")
        // Keep every argument alive and contiguous for the duration of the C call.
        let storage = arguments.map { $0.isEmpty ? [UInt8(0)] : $0 }
        var pointers: [UnsafePointer<CChar>?] = []
        var lengths: [Int] = arguments.map(\.count)
        var allocations: [UnsafeMutableBufferPointer<UInt8>] = []
        defer { for allocation in allocations { allocation.deallocate() } }
        for argument in storage {
            let copy = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: argument.count)
            _ = copy.initialize(from: argument)
            allocations.append(copy)
            pointers.append(UnsafeRawPointer(copy.baseAddress!).assumingMemoryBound(to: CChar.self))
        }
        var output: UnsafeMutablePointer<CChar>?
        let length = pointers.withUnsafeMutableBufferPointer { argv in
            lengths.withUnsafeMutableBufferPointer { argvlen in
                redisFormatCommandArgv(&output, Int32(argv.count), argv.baseAddress, argvlen.baseAddress)
            }
        }
        guard length > 0, let output else {
            preconditionFailure("redisFormatCommandArgv failed: out of memory")
        }
        defer { free(output) }
        return Array(UnsafeRawBufferPointer(start: output, count: Int(length)))
    }

    /// Convenience for textual arguments.
    package static func encode(_ arguments: [String]) -> [UInt8] {
        encode(arguments.map { Array($0.utf8) })
    }
}
