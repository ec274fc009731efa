import GatewayAuth
import GatewayStore

/// How one event loop reaches `[[auth.oauth.introspection]]` endpoints: the server's
/// non-blocking POST and the answers every instance shares (nil without `[redis]`). Built
/// by the server; any thread.
struct LoopIntrospection {
    var post: HTTPPoster
    var shared: (any IntrospectionCacheStore)?
}
