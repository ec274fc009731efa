package import GatewayAuth
package import GatewayStore

/// How one event loop reaches `[[auth.oauth.introspection]]` endpoints: the server's
/// non-blocking POST and the answers every instance shares (nil without `[redis]`). Built
/// by the server; any thread.
package struct LoopIntrospection {
    package var post: HTTPPoster
    package var shared: (any IntrospectionCacheStore)?

    package init(post: @escaping HTTPPoster, shared: (any IntrospectionCacheStore)?) {
        self.post = post
        self.shared = shared
    }
}
