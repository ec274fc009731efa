/// What the route a request matched asks of its credential: the proxy's route table decides
/// it, the `Authenticator` enforces it. A value; any thread.
package enum RouteRequirement: Sendable, Hashable {
    /// No credential needed.
    case open
    /// A valid credential holding every one of these scopes (empty: any credential).
    case scopes([String])
    /// No route matched and the policy is deny.
    case denied
}
