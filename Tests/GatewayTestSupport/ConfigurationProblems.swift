package import GatewayConfig

/// The problems `ConfigurationLoader` reports for `text` read as `file`; empty when the text
/// parsed. Tests that expect problems assert on what comes back, so a text that parses fails
/// them without a separate check.
package func configurationProblems(_ text: String, file: String = "gateway.conf") -> [ConfigurationError.Problem] {
    do {
        _ = try ConfigurationLoader.parse(text: text, file: file)
        return []
    } catch {
        return error.problems
    }
}
