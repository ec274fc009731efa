import Foundation

/// Writes `contents` to a new file in the temporary directory and returns its path: a
/// secret, key or JWKS file a configuration under test points at. Each call makes a new file,
/// so parallel tests never share one.
package func temporaryFile(_ contents: String, prefix: String = "dbgw-test") throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
    try contents.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}
