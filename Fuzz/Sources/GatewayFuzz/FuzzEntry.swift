#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// SwiftPM links an executable with `main` aliased to `<module>_main` (so tests can link the
/// module), which hides libFuzzer's own `main`: this one hands control to libFuzzer's driver.
@_cdecl("GatewayFuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in
        guard let data else { return 0 }
        return fuzzOne(data, size)
    }
}

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// The libFuzzer entry point: libFuzzer (linked by `-sanitize=fuzzer`) owns `main` and calls
/// this once per input on its one thread. The parser under test is chosen once, from
/// `DBGW_FUZZ_TARGET`, so one build serves every target (`make fuzz`).
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    FuzzTarget.selected.run(input)
    return 0
}

/// Every fuzz target, by the name `make fuzz` passes in `DBGW_FUZZ_TARGET`. Stateless; the
/// fuzzer's thread.
enum FuzzTarget: String, CaseIterable {
    case requestHead = "request_head"
    case jose
    case json
    case jwks
    case config
    case resp
    case form
    case cookie
    case authorization
    case http1

    static let selected: FuzzTarget = {
        guard let name = getenv("DBGW_FUZZ_TARGET").map({ String(cString: $0) }),
            let target = FuzzTarget(rawValue: name)
        else {
            let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
            fatalError("set DBGW_FUZZ_TARGET to one of: \(names)")
        }
        return target
    }()

    func run(_ input: UnsafeBufferPointer<UInt8>) {
        switch self {
        case .requestHead: RequestHeadTarget.run(input)
        case .jose: JOSETarget.run(input)
        case .json: JSONTarget.run(input)
        case .jwks: JWKSTarget.run(input)
        case .config: ConfigTarget.run(input)
        case .resp: RESPTarget.run(input)
        case .form: FormTarget.run(input)
        case .cookie: CookieTarget.run(input)
        case .authorization: AuthorizationTarget.run(input)
        case .http1: HTTP1Target.run(input)
        }
    }
}

/// Stops the run with a message when a parser breaks one of its invariants: libFuzzer
/// reports the trap as a crash and saves the input, so a logic bug is found like a
/// memory error.
func invariant(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() {
        fatalError("invariant broken: \(message())")
    }
}
