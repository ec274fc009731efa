import GatewayConfig

/// The configuration loader on TOML text. Every problem names a line inside the text; a
/// configuration it accepts, rendered back as `check-config` prints it, must load again
/// and render identically, unless the rendering left a secret out. Stateless; the
/// fuzzer's thread.
enum ConfigTarget {
    static func run(_ input: UnsafeBufferPointer<UInt8>) {
        guard input.count <= 64 * 1024, let text = String(validating: input, as: UTF8.self) else { return }
        let lineCount = text.utf8.reduce(1) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
        let configuration: GatewayConfiguration
        do {
            configuration = try ConfigurationLoader.parse(text: text, file: "fuzz.conf")
        } catch {
            invariant(!error.problems.isEmpty, "a refused configuration with no problem listed")
            for problem in error.problems {
                if let line = problem.line { invariant(line >= 1 && line <= lineCount, "problem on line \(line)") }
            }
            return
        }
        let rendered = configuration.renderedTOML()
        do {
            let again = try ConfigurationLoader.parse(text: rendered, file: "rendered.conf")
            let renderedAgain = again.renderedTOML()
            invariant(
                renderedAgain == rendered,
                "the rendering changed after a reload:\n\(rendered)\n---\n\(renderedAgain)"
            )
        } catch {
            invariant(
                rendered.contains("<redacted>"),
                "the rendered configuration is refused: \(error.problems)\n\(rendered)"
            )
        }
    }
}
