import GatewayCore
import GatewayStore

/// The process-local data behind every loop's stores when `[redis]` is not configured (the
/// demo, a single node): credentials, users and sessions, and, with `[oauth]` (only the
/// demo builds that without Redis), codes, consents, browser state and opaque tokens.
/// Each part is shared by all loops behind its own lock; any thread.
struct InMemoryData: Sendable {
    struct OAuth: Sendable {
        var clients: InMemoryOAuthData
        var browser: InMemoryBrowserStateData
        var opaqueTokens: InMemoryOpaqueAccessTokenData
    }

    var credentials = InMemoryCredentialData()
    var sessions = InMemorySessionData()
    var oauth: OAuth?

    /// - Parameters:
    ///   - oauth: `[oauth]` is configured (its data is made only then).
    ///   - clock: the gateway's clock, for the browser state's and opaque tokens' lifetimes.
    init(oauth: Bool, clock: GatewayClock) {
        self.oauth =
            oauth
            ? OAuth(
                clients: InMemoryOAuthData(),
                browser: InMemoryBrowserStateData(clock: clock),
                opaqueTokens: InMemoryOpaqueAccessTokenData(clock: clock)
            ) : nil
    }
}
