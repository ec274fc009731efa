/// The gateway's release version, printed by `dbaudit-gateway --version` and sent as the
/// `User-Agent` of its own HTTP requests. A constant; any thread.
package enum GatewayVersion {
    package static let current = "0.4.0"
}
